"""Rule merge_adapter: each adapter merged once into its base model's weights, for fast inference.

The step is lmsweep.steps.merge_adapter; run it by hand with `python scripts/merge_adapter.py --help`.
"""

from lmsweep.runtime.job import main

main("merge_adapter", globals().get("snakemake"))
