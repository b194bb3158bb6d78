"""Collect every scoring and perplexity result into one tidy table."""

import json

COLUMNS = [
    "model", "variant", "decoding", "metric", "value", "n_examples",
    "sweep_parameter", "sweep_value", "signature", "seed", "versions",
]


def versions_text(versions: dict) -> str:
    """Library versions as one cell: 'bert-score=0.3.13;peft=0.21.2;...'."""
    return ";".join(f"{k}={v}" for k, v in sorted((versions or {}).items()) if v)


def score_rows(summary: dict, moved: dict) -> list:
    parameter, value = moved.get(summary["decoding"]) or (None, None)
    return [
        {
            "model": summary["model"],
            "variant": summary["variant"],
            "decoding": summary["decoding"],
            "metric": metric,
            "value": result["score"],
            "n_examples": summary["n_examples"],
            "sweep_parameter": parameter,
            "sweep_value": value,
            "signature": result["signature"],
            "seed": summary["seed"],
            "versions": versions_text(summary.get("versions")),
        }
        for metric, result in summary["metrics"].items()
    ]


def perplexity_rows(result: dict) -> list:
    return [{
        "model": result["model"],
        "variant": result["variant"],
        "decoding": "teacher_forced",
        "metric": "perplexity",
        "value": result["perplexity"],
        "n_examples": result["n_examples"],
        "sweep_parameter": None,
        "sweep_value": None,
        "signature": result["signature"],
        "seed": result["seed"],
        "versions": versions_text(result.get("versions")),
    }]


def aggregate(score_files, perplexity_files, moved: dict):
    """The tidy table; `moved` maps a decoding config to the (parameter, value) it sweeps."""
    import pandas as pd

    rows = []
    for path in score_files:
        rows += score_rows(json.loads(open(path).read()), moved)
    for path in perplexity_files:
        rows += perplexity_rows(json.loads(open(path).read()))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "variant", "metric", "decoding"], kind="stable").reset_index(drop=True)
