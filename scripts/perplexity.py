"""Rule perplexity: token perplexity, bits per byte and word perplexity of the reference answers.

The step is lmsweep.steps.perplexity; run it by hand with `python scripts/perplexity.py --help`.
"""

from lmsweep.runtime.job import main

main("perplexity", globals().get("snakemake"))
