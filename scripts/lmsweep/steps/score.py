"""Rule score: BLEU, ROUGE-L and BERTScore of one file of predictions, per example and for the corpus.

The predictions are checked against the test split first (every id once, the
split's references), and against the run's labels from their path; the
references scored are the test split's, never the file's own.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from lmsweep.records import ScoreSummary
from lmsweep.settings import BertScore, Bleu, Rouge, RunLabels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    labels: RunLabels
    bleu: Bleu
    rouge: Rouge
    bertscore: BertScore
    seed: int
    device: str


@dataclass(frozen=True)
class Paths:
    predictions: str
    test: str
    summary: str
    per_example: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> ScoreSummary:
    # The predictions are checked before anything heavy is imported.
    from lmsweep.checks import read_predictions, test_records

    labels = asdict(settings.labels)
    rows = read_predictions(paths.predictions, paths.test, labels)
    references = test_records(paths.test)
    import csv

    import torch

    torch.set_num_threads(threads)
    import pandas as pd

    from lmsweep import metrics
    from lmsweep.io import atomic_path
    from lmsweep.models import resolve_device
    from lmsweep.reproducibility import library_versions, seed_everything

    seed_everything(settings.seed)
    preds = [r["prediction"] for r in rows]
    refs = [references[r["id"]]["output"] for r in rows]
    bertscore = asdict(settings.bertscore)
    results = {
        "bleu": metrics.bleu(preds, refs, tokenize=settings.bleu.tokenize),
        "rouge_l": metrics.rouge_l(preds, refs, use_stemmer=settings.rouge.use_stemmer),
        "bertscore_f1": metrics.bertscore(preds, refs, device=resolve_device(settings.device), **bertscore),
    }
    table = pd.DataFrame({"id": [r["id"] for r in rows], "prediction": preds, "reference": refs})
    for name, result in results.items():
        table[name] = result["per_example"]
    for column in ("new_tokens", "hit_max_new_tokens", "prompt_tokens_cut"):
        table[column] = [r.get(column) for r in rows]
    table["seed"] = settings.seed  # the CSV travels alone; the signatures are in the summary JSON beside it
    table["replicate"] = settings.labels.replicate
    with atomic_path(paths.per_example) as tmp:
        # Every text quoted: an answer may hold any character, a bare carriage return included,
        # which the default quoting leaves unquoted and a CSV reader then takes for a line break.
        table.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)
    first = rows[0]
    summary = ScoreSummary(
        **labels,
        sweep=first.get("sweep"),
        settings=first.get("settings"),
        generation_config=first.get("generation_config"),
        inference=first.get("inference"),  # which weights made the answers (as trained, merged)
        n_examples=len(rows),
        empty_predictions=sum(not p.strip() for p in preds),
        hit_max_new_tokens=sum(bool(r.get("hit_max_new_tokens")) for r in rows),
        seed=settings.seed,
        metrics={k: {"score": v["score"], "signature": v["signature"]} for k, v in results.items()},
        bertscore_settings=bertscore,
        versions=library_versions(),
    )
    summary.save(paths.summary)
    log.info(str({k: round(v["score"], 4) for k, v in results.items()}))
    return summary
