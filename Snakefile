# lmsweep: which base model, adapted how, decoded how, is best on my data?
#
#   snakemake --cores 1 --use-conda                  # the study in config.yaml
#   snakemake --cores 2 --directory demo             # the offline demo
#   snakemake --cores 2 --directory demo_chat        # a real pretrained chat model, offline
#
# The DAG: prepare_data (and build_tiny_model or convert_gguf for a model the workflow makes) -> finetune
# (one adapter per model) -> generate and score (one job per model x decoding config) -> perplexity ->
# check_scores -> aggregate and compare -> report. Each rule is in rules/<rule>.smk, its script in
# scripts/<rule>.py, its logic in scripts/lmsweep/steps/<rule>.py.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# Checks the config (every mistake, in one line each), then validate()s it against config.schema.yaml,
# which also fills in the defaults.
include: "rules/common.smk"


report: "reports/workflow.rst"


include: "rules/prepare_data.smk"
include: "rules/build_tiny_model.smk"
include: "rules/convert_gguf.smk"
include: "rules/finetune.smk"
include: "rules/merge_adapter.smk"
include: "rules/generate.smk"
include: "rules/score.smk"
include: "rules/perplexity.smk"
include: "rules/check_scores.smk"
include: "rules/aggregate.smk"
include: "rules/compare.smk"
include: "rules/report.smk"
include: "rules/prefetch.smk"


# CPU-only steps that take seconds: on a cluster they run on the submit host instead of waiting in the
# queue (prefetch must: it needs the internet).
localrules:
    prefetch,
    prepare_data,
    build_tiny_model,
    check_scores,
    aggregate,
    compare,
    report,


# The Hugging Face cache of every process, offline on cluster nodes; what the run should know before it
# starts (lmsweep.runtime.notices).
from lmsweep.runtime import notices, start

notices.at_parse(workflow, config)


# GPU claims, forced training, the warm fork server (lmsweep.runtime.start).
onstart:
    start.at_start(workflow, config)


rule all:
    input:
        wiring.SCORES,
        wiring.COMPARISONS,
        rules.report.output,
