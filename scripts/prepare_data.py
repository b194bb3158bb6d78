"""Rule prepare_data: load the instruction dataset, validate every record, split it into train and test.

The step is lmsweep.steps.prepare_data; run it by hand with `python scripts/prepare_data.py --help`.
"""

from lmsweep.runtime.job import main

main("prepare_data", globals().get("snakemake"))
