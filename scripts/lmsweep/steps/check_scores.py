"""Rule check_scores: every score and perplexity file checked before the tables are rebuilt from them.

Snakemake removes a job's old outputs before it runs the job, so a damaged
per-example file found by aggregate itself would cost scores.csv and
comparisons.csv their previous, correct numbers. Checked here first, in a
step of its own, a damaged file stops the run with its name and the fix, and
the tables keep what they had.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep.records import CheckedScores, per_example_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    bertscore_rescaled: bool  # rescaled BERTScore may lie below -1


@dataclass(frozen=True)
class Paths:
    test: str
    scores: list
    per_example: list
    perplexities: list
    perplexity_examples: list
    checked: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> CheckedScores:
    from lmsweep.io import sha256_file
    from lmsweep.runs import load_perplexities, load_runs

    runs = load_runs(paths.scores, paths.test, settings.bertscore_rescaled)
    perplexities = load_perplexities(paths.perplexities, paths.test)
    files = sorted(map(str, [*paths.scores, *paths.perplexities]))
    tables = [str(per_example_path(f)) for f in files]
    checked = CheckedScores(
        test=paths.test, runs=len(runs), replicates=sum(len(r.tables) for r in runs.values()),
        perplexities=len(perplexities), sha256={path: sha256_file(path) for path in [paths.test, *files, *tables]},
    )
    checked.save(paths.checked)
    log.info(f"checked {len(files)} summaries and their per-example files: {len(runs)} runs, "
             f"{len(perplexities)} perplexities")
    return checked
