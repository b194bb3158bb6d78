"""The study's runs, read back for the tables: every score and perplexity file, checked.

A run is one (model, variant, decoding config), made of one or more seed
replicates (sampled configs, generation.replicates). A file is trusted for
nothing it says about itself that can be known otherwise: a run's labels
come from its path (results/score/<model>/<variant>/<decoding>/rep<r>.json,
which Snakemake made), the references from the test split, and every
per-example number must be finite and in its metric's range (lmsweep.checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lmsweep import checks
from lmsweep.records import PerplexitySummary, ScoreSummary, per_example_path
from lmsweep.vocabulary import TEXT

# Where each per-example number can lie; anything else is a damaged or edited file, not a score.
PER_EXAMPLE_RANGES = {"bleu": (0.0, 100.0), "rouge_l": (0.0, 1.0), "bertscore_f1": (-1.0, 1.0)}
PERPLEXITY_RANGES = {"nll": (0.0, math.inf), "tokens": (1, math.inf), "nll_text": (0.0, math.inf),
                     "bytes": (1, math.inf), "words": (1, math.inf)}


@dataclass
class Run:
    """One (model, variant, decoding config): its replicates' summaries and per-example tables (rows by id)."""

    model: str
    variant: str
    decoding: str
    summaries: list = field(default_factory=list)  # ScoreSummary, one per replicate
    tables: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.model, self.variant, self.decoding

    @property
    def sweep(self):
        return self.summaries[0].sweep or [None, None]

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


def load_runs(summary_files, test_path, bertscore_rescaled: bool = False) -> dict:
    """{(model, variant, decoding): Run}, every file checked against the test split and its own path.

    Rescaled BERTScore (bertscore_rescaled) can lie below -1.
    """
    from lmsweep.decoding import config_name
    from lmsweep.stats import repeated_ngram_rate

    records = checks.test_records(test_path)
    ids = list(records)
    ranges = {**PER_EXAMPLE_RANGES, **({"bertscore_f1": (-math.inf, 1.0)} if bertscore_rescaled else {})}
    runs = {}
    for path in sorted(checks.distinct(summary_files, "score summaries"), key=str):
        labels = checks.labels_of(path, "score")
        summary = ScoreSummary.load(path)
        checks.check_labels(path, summary.__dict__, labels)
        if summary.n_examples != len(ids):
            raise checks.IntermediateFileError(
                f"{path} scored {summary.n_examples} examples; {test_path} has {len(ids)}: {checks.fix(path)}"
            )
        if summary.sweep is not None and not (len(summary.sweep) == 2
                                              and config_name(*summary.sweep) == labels["decoding"]):
            raise checks.IntermediateFileError(
                f"{path}: its sweep {summary.sweep!r} does not name the decoding config of its path, "
                f"{labels['decoding']!r}; the file was edited or moved: {checks.fix(path)}"
            )
        table_path = per_example_path(path)
        table = checks.read_table(table_path, ids, numeric=TEXT, text=("prediction", "reference"),
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
        key = (labels["model"], labels["variant"], labels["decoding"])
        run = runs.setdefault(key, Run(*key))
        run.summaries.append(summary)
        run.tables.append(table)
    return runs


def load_perplexities(summary_files, test_path) -> dict:
    """{(model, variant): (summary, per-example table by id)}, checked against the test split and its path."""
    ids = checks.test_ids(test_path)
    out = {}
    for path in sorted(checks.distinct(summary_files, "perplexity summaries"), key=str):
        labels = checks.labels_of(path, "perplexity")
        summary = PerplexitySummary.load(path)
        checks.check_labels(path, summary.__dict__, labels)
        table_path = per_example_path(path)
        table = checks.read_table(table_path, ids, numeric=tuple(PERPLEXITY_RANGES), test_path=test_path,
                                  ranges=PERPLEXITY_RANGES).sort_values("id").reset_index(drop=True)
        over = table.nll_text > table.nll + 1e-6
        if over.any():
            raise checks.IntermediateFileError(
                f"{table_path}: nll_text exceeds nll for test id(s) {', '.join(map(str, table.id[over][:5]))}; the "
                f"answer's own tokens cannot lose more than the answer and its EOS: {checks.fix(table_path)}"
            )
        out[(labels["model"], labels["variant"])] = (summary, table)
    return out
