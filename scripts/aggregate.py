"""Rule aggregate: every result in one tidy table, each number with its interval.

The step is lmsweep.steps.aggregate; run it by hand with `python scripts/aggregate.py --help`.
"""

from lmsweep.runtime.job import main

main("aggregate", globals().get("snakemake"))
