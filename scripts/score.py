"""Rule score: BLEU, ROUGE-L and BERTScore of one file of predictions, per example and for the corpus.

The step is lmsweep.steps.score; run it by hand with `python scripts/score.py --help`.
"""

from lmsweep.runtime.job import main

main("score", globals().get("snakemake"))
