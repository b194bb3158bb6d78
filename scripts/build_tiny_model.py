"""Rule build_tiny_model: a tiny random-weight model of a real architecture, for the demo and the tests.

The step is lmsweep.steps.build_tiny_model; run it by hand with `python scripts/build_tiny_model.py --help`.
"""

from lmsweep.runtime.job import main

main("build_tiny_model", globals().get("snakemake"))
