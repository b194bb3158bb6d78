"""Rule check_scores: every score and perplexity file checked before the tables are rebuilt from them.

The step is lmsweep.steps.check_scores; run it by hand with `python scripts/check_scores.py --help`.
"""

from lmsweep.runtime.job import main

main("check_scores", globals().get("snakemake"))
