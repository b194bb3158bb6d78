"""Rule generate: answers for every test prompt under one decoding config, with or without the adapter.

The step is lmsweep.steps.generate; run it by hand with `python scripts/generate.py --help`.
"""

from lmsweep.runtime.job import main

main("generate", globals().get("snakemake"))
