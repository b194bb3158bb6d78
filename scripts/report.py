"""Rule report: the study's questions answered in computed sentences, then the tables behind them.

The step is lmsweep.steps.report; run it by hand with `python scripts/report.py --help`.
"""

from lmsweep.runtime.job import main

main("report", globals().get("snakemake"))
