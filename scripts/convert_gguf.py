"""Rule convert_gguf: a model folder from a GGUF file, its sha256 checked.

The step is lmsweep.steps.convert_gguf; run it by hand with `python scripts/convert_gguf.py --help`.
"""

from lmsweep.runtime.job import main

main("convert_gguf", globals().get("snakemake"))
