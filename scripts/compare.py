"""Rule compare: paired comparisons on the same test examples, corrected for their number.

The step is lmsweep.steps.compare; run it by hand with `python scripts/compare.py --help`.
"""

from lmsweep.runtime.job import main

main("compare", globals().get("snakemake"))
