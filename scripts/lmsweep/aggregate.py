"""Every result in one tidy table, each number with its interval (rule aggregate).

A run is one (model, variant, decoding config), made of one or more seed
replicates (sampled configs, generation.replicates). Its numbers pool the
replicates: per-example scores are averaged over them; corpus BLEU is computed
from sacreBLEU's statistics summed over them (BLEU of all replicates' answers
as one corpus). Intervals resample test examples, each with all its
replicates (lmsweep.stats), so they measure how much the number would move on
other prompts like these; `replicate_sd` beside them says how much it moves
with the sampling seed alone.
"""

import math
from dataclasses import dataclass, field

from lmsweep import checks

METRICS = ("bleu", "rouge_l", "bertscore_f1")
PERPLEXITY_METRICS = ("perplexity", "bits_per_byte", "word_perplexity")
# Output hygiene, per example 0/1 (or a rate), reported like the metrics.
HYGIENE = ("empty", "hit_max_new_tokens", "repeated_3gram_rate")
HIGHER_IS_BETTER = {
    "bleu": True, "rouge_l": True, "bertscore_f1": True,
    "perplexity": False, "bits_per_byte": False, "word_perplexity": False,
    "empty": False, "hit_max_new_tokens": False, "repeated_3gram_rate": False,
}
COLUMNS = [
    "model", "variant", "weights", "decoding", "metric", "value", "ci_low", "ci_high", "higher_is_better", "n_examples",
    "replicates", "replicate_sd", "replicate_min", "replicate_max", "sweep_parameter", "sweep_value",
    "interval", "signature", "seed", "versions",
]


@dataclass
class Run:
    """One (model, variant, decoding config): its replicates' summaries and per-example tables (rows by id)."""

    model: str
    variant: str
    decoding: str
    summaries: list = field(default_factory=list)
    tables: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.model, self.variant, self.decoding

    @property
    def sweep(self):
        return self.summaries[0].get("sweep") or [None, None]

    def per_example(self, column: str):
        """The column averaged over replicates, one value per test example (by id)."""
        import numpy as np

        return np.mean([t[column].to_numpy(dtype=float) for t in self.tables], axis=0)

    def predictions(self) -> list:
        return [t["prediction"].tolist() for t in self.tables]

    def bleu_stats(self, tokenize: str):
        from lmsweep.stats import bleu_statistics

        return sum(bleu_statistics(t["prediction"].tolist(), t["reference"].tolist(), tokenize)
                   for t in self.tables)


def versions_text(versions: dict) -> str:
    """Library versions as one cell: 'bert-score=0.3.13;peft=0.21.2;...'."""
    return ";".join(f"{k}={v}" for k, v in sorted((versions or {}).items()) if v)


# Where each per-example number can lie; anything else is a damaged or edited file, not a score.
PER_EXAMPLE_RANGES = {"bleu": (0.0, 100.0), "rouge_l": (0.0, 1.0), "bertscore_f1": (-1.0, 1.0)}
PERPLEXITY_RANGES = {"nll": (0.0, math.inf), "tokens": (1, math.inf), "nll_text": (0.0, math.inf),
                     "bytes": (1, math.inf), "words": (1, math.inf)}


def load_runs(summary_files, test_path, bertscore_rescaled: bool = False) -> dict:
    """{(model, variant, decoding): Run}, every file checked against the test split and its own path.

    The per-example CSV of a summary lies beside it (`<stem>.per_example.csv`).
    A run's labels come from the path (results/score/<model>/<variant>/<decoding>/rep<r>.json), which
    Snakemake made; the references, from the test split. Rescaled BERTScore (bertscore_rescaled) can lie
    below -1.
    """
    from lmsweep.stats import repeated_ngram_rate

    records = checks.test_records(test_path)
    ids = list(records)
    ranges = {**PER_EXAMPLE_RANGES, **({"bertscore_f1": (-math.inf, 1.0)} if bertscore_rescaled else {})}
    runs = {}
    for path in sorted(checks.distinct(summary_files, "score summaries")):
        labels = checks.labels_of(path, "score")
        summary = checks.read_json_checked(path, ["metrics", "n_examples"])
        checks.check_labels(path, summary, labels)
        if summary["n_examples"] != len(ids):
            raise checks.IntermediateFileError(
                f"{path} scored {summary['n_examples']} examples; {test_path} has {len(ids)}: {checks.fix(path)}"
            )
        table_path = str(path).removesuffix(".json") + ".per_example.csv"
        table = checks.read_table(table_path, ids, numeric=METRICS, text=("prediction", "reference"),
                                  test_path=test_path, ranges=ranges).sort_values("id").reset_index(drop=True)
        wrong = [i for i, ref in zip(table.id, table.reference) if ref != records[i]["output"]]
        if wrong:
            raise checks.IntermediateFileError(
                f"{table_path}: the reference of test id(s) {', '.join(map(str, wrong[:5]))} is not the test split's "
                f"answer in {test_path}; the file was edited or made from another split: {checks.fix(table_path)}"
            )
        table["empty"] = [float(not p.strip()) for p in table.prediction]
        hit = table["hit_max_new_tokens"] if "hit_max_new_tokens" in table else [False] * len(table)
        table["hit_max_new_tokens"] = [float(str(h).lower() == "true") for h in hit]
        table["repeated_3gram_rate"] = [repeated_ngram_rate(p, 3) for p in table.prediction]
        sweep = summary.get("sweep")
        if sweep is not None:
            from lmsweep.decoding import config_name

            if not (isinstance(sweep, list) and len(sweep) == 2 and config_name(*sweep) == labels["decoding"]):
                raise checks.IntermediateFileError(
                    f"{path}: its sweep {sweep!r} does not name the decoding config of its path, "
                    f"{labels['decoding']!r}; the file was edited or moved: {checks.fix(path)}"
                )
        key = (labels["model"], labels["variant"], labels["decoding"])
        run = runs.setdefault(key, Run(*key))
        run.summaries.append({**summary, **labels})
        run.tables.append(table)
    return runs


def load_perplexities(summary_files, test_path) -> dict:
    """{(model, variant): (summary, per-example table by id)}, checked against the test split and its path."""
    ids = checks.test_ids(test_path)
    out = {}
    for path in sorted(checks.distinct(summary_files, "perplexity summaries")):
        labels = checks.labels_of(path, "perplexity")
        summary = checks.read_json_checked(path, ["perplexity", "n_examples"])
        checks.check_labels(path, summary, labels)
        table_path = str(path).removesuffix(".json") + ".per_example.csv"
        table = checks.read_table(table_path, ids, numeric=tuple(PERPLEXITY_RANGES), test_path=test_path,
                                  ranges=PERPLEXITY_RANGES).sort_values("id").reset_index(drop=True)
        over = table.nll_text > table.nll + 1e-6
        if over.any():
            raise checks.IntermediateFileError(
                f"{table_path}: nll_text exceeds nll for test id(s) {', '.join(map(str, table.id[over][:5]))}; the "
                f"answer's own tokens cannot lose more than the answer and its EOS: {checks.fix(table_path)}"
            )
        out[(labels["model"], labels["variant"])] = ({**summary, **labels}, table)
    return out


def _interval_text(result) -> str:
    return f"{result.method}, {result.n_resamples} resamples, seed {result.seed}, {result.confidence_level:.0%}"


def run_rows(run: Run, tokenize: str, statistics: dict) -> list:
    """The rows of one run: each metric and hygiene rate, pooled over replicates, with its interval."""
    from lmsweep import stats

    options = dict(n_resamples=statistics["resamples"], seed=statistics["seed"],
                   confidence_level=statistics["confidence"])
    first = run.summaries[0]
    parameter, value = run.sweep
    rows = []
    for metric in METRICS + HYGIENE:
        if metric == "bleu":
            result = stats.bleu_interval_from_stats(run.bleu_stats(tokenize), tokenize=tokenize, **options)
        else:
            result = stats.mean_interval(run.per_example(metric), **options)
        if metric in METRICS:
            by_seed = [s["metrics"][metric]["score"] for s in run.summaries]
            signature = first["metrics"][metric]["signature"]
        else:
            by_seed = [float(t[metric].mean()) for t in run.tables]
            signature = {"empty": "share of answers that are empty or whitespace",
                         "hit_max_new_tokens": "share of answers cut at max_new_tokens before their end",
                         "repeated_3gram_rate": "mean share of an answer's word 3-grams repeating an earlier one"}[metric]
        spread = stats.replicate_spread(by_seed)
        rows.append({
            "model": run.model, "variant": run.variant, "weights": first.get("inference"),
            "decoding": run.decoding, "metric": metric,
            "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "higher_is_better": HIGHER_IS_BETTER[metric], "n_examples": first["n_examples"],
            "replicates": spread.n_seeds, "replicate_sd": spread.std, "replicate_min": spread.min,
            "replicate_max": spread.max, "sweep_parameter": parameter, "sweep_value": value,
            "interval": _interval_text(result), "signature": signature, "seed": first["seed"],
            "versions": versions_text(first.get("versions")),
        })
    return rows


def perplexity_rows(summary: dict, table, statistics: dict) -> list:
    from lmsweep import stats

    options = dict(n_resamples=statistics["resamples"], seed=statistics["seed"],
                   confidence_level=statistics["confidence"])
    results = {
        "perplexity": stats.perplexity_interval(table.nll, table.tokens, **options),
        # The answers' own tokens (no EOS) over the units of their text, as lm-evaluation-harness counts them.
        "bits_per_byte": stats.bits_per_byte_interval(table.nll_text, table.bytes, **options),
        # exp(sum NLL / sum words): the perplexity formula over words
        "word_perplexity": stats.perplexity_interval(table.nll_text, table.words, **options),
    }
    return [{
        "model": summary["model"], "variant": summary["variant"], "weights": summary.get("inference"),
        "decoding": "teacher_forced", "metric": metric,
        "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
        "higher_is_better": False, "n_examples": summary["n_examples"], "replicates": 1,
        "replicate_sd": None, "replicate_min": None, "replicate_max": None,
        "sweep_parameter": None, "sweep_value": None, "interval": _interval_text(result),
        "signature": summary["signatures"][metric], "seed": summary["seed"],
        "versions": versions_text(summary.get("versions")),
    } for metric, result in results.items()]


def aggregate(score_files, perplexity_files, test_path, bleu: dict, statistics: dict, bertscore_rescaled=False):
    """The tidy table: one row per (model, variant, decoding, metric)."""
    import pandas as pd

    rows = []
    runs = load_runs(score_files, test_path, bertscore_rescaled)
    print(f"{len(runs)} runs, {statistics['resamples']} bootstrap resamples per interval", flush=True)
    step = max(1, len(runs) // 10)
    for done, run in enumerate(runs.values(), start=1):
        rows += run_rows(run, bleu.get("tokenize", "13a"), statistics)
        if done % step == 0 or done == len(runs):
            print(f"intervals of {done} of {len(runs)} runs", flush=True)
    for summary, table in load_perplexities(perplexity_files, test_path).values():
        rows += perplexity_rows(summary, table, statistics)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "variant", "metric", "decoding"], kind="stable").reset_index(drop=True)


def add_run_arguments(parser) -> None:
    """The inputs and output of aggregate.py and compare.py, and the statistics options."""
    from lmsweep.files import existing_path

    parser.add_argument("--test", required=True, type=existing_path, help="test.jsonl the runs were made for")
    parser.add_argument("--scores", nargs="+", required=True, type=existing_path, help="summary JSON files from score")
    parser.add_argument("--perplexities", nargs="*", default=[], type=existing_path, help="JSON files from perplexity")
    parser.add_argument("--out", required=True)
    parser.add_argument("--bertscore-rescaled", action="store_true", help="BERTScore was rescaled with its baseline")
    add_statistics_arguments(parser)


def add_statistics_arguments(parser) -> None:
    """The statistics section of the config as options (scripts/aggregate.py, compare.py, report.py)."""
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of every interval")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples per interval")
    parser.add_argument("--max-resamples", type=int, default=100000, help="for Monte-Carlo tests Holm could turn on")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm")
    parser.add_argument("--stats-seed", type=int, default=42, help="seed of the resampling")
    parser.add_argument("--bleu-tokenize", default="13a", help="sacreBLEU tokenizer, as scoring used")


def statistics_from_args(args) -> tuple:
    return ({"tokenize": args.bleu_tokenize},
            {"confidence": args.confidence, "resamples": args.resamples, "max_resamples": args.max_resamples,
             "alpha": args.alpha, "seed": args.stats_seed})
