"""The study's wiring: from the checked config and a job's wildcards to the job's paths and typed settings.

layout: where each rule writes; study: what one config plans; jobs: each
rule's wildcards, settings and paths. The rules (rules/*.smk) and a step run
by hand (lmsweep.runtime.cli) both build a job here, from the config's values
alone (its defaults are the schema's, filled in by lmsweep.configcheck).
Nothing here imports a library or touches a model: it runs while Snakemake
reads the workflow.
"""

from lmsweep.wiring.layout import (  # noqa: F401
    ADAPTER, BUILT, CHECKED, CHECKPOINTS, COMPARISONS, CONVERTED, GENERATION_INFO, LOSS, MERGED, PERPLEXITY, PERPLEXITY_EXAMPLES,
    PREDICTIONS, REPORT, RUN, SCORE, SCORE_EXAMPLES, SCORES, SPLIT, TRAINED, VARIANTS,
)
from lmsweep.wiring.study import Study, Wildcards  # noqa: F401
