"""Rule prefetch: download every Hub model and dataset the study needs into the local cache.

The step is lmsweep.steps.prefetch; run it by hand with `python scripts/prefetch.py --help`.
"""

from lmsweep.runtime.job import main

main("prefetch", globals().get("snakemake"))
