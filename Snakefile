# lmsweep: which base model, adapted how, decoded how, is best on my data?
#
#   snakemake --cores 1 --use-conda                  # the study in config.yaml
#   snakemake --cores 2 --directory demo             # the offline demo
#
# The DAG: prepare_data -> finetune (one adapter per model) -> generate and
# score (one job per model x decoding config) -> perplexity -> aggregate -> report.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# Checks the config (every mistake, in one line each), then validate()s it
# against config.schema.yaml, which also fills in the defaults.
include: "rules/common.smk"


report: "reports/workflow.rst"


include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/generate.smk"
include: "rules/score.smk"
include: "rules/report.smk"
include: "rules/prefetch.smk"


# CPU-only steps that take seconds: on a cluster they run on the submit host
# instead of waiting in the queue (prefetch must: it needs the internet).
localrules:
    prefetch,
    prepare_data,
    build_tiny_model,
    check_scores,
    aggregate,
    compare,
    report,


# Every process of the run reads the same Hugging Face cache (hf_home); jobs on
# cluster nodes run offline (see rules/prefetch.smk).
os.environ.update(hub_environment())
warn_uncached()
warn_deleted()
warn_unrecorded()
note_report_mode()


onstart:
    mark_forced_training()
    check_local_gpu()
    share_gpus()
    start_warm_server()


rule all:
    input:
        "results/scores.csv",
        "results/comparisons.csv",
        rules.report.output,
