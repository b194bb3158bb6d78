# Prefetch, the Hugging Face cache the jobs read, and which rules stay on the
# submit host when jobs go to a cluster.
#
#   snakemake --cores 1 prefetch                        # on the login node: fill the cache
#   snakemake --workflow-profile profiles/slurm         # then the study, offline on the nodes
#
# prefetch is a target of its own, not an input of the model jobs. The jobs
# read the cache, not a file: a flag file (all an input can be) would go on
# claiming a cache that was since cleaned, moved (hf_home) or lacks a model
# just added, so prefetch has no output and asks the cache itself every time
# (a second when everything is there). As an input, even ancient(), it would
# change every job's recorded inputs (a finished study would rerun once) and
# tie every run, local and dry runs and the offline demo included, to a step
# that needs the internet.

import os
from dataclasses import asdict

from snakemake.logging import logger

from lmsweep import prefetch as hub


# CPU-only steps that take seconds: on a cluster they run on the submit host
# instead of waiting in the queue (prefetch must: it needs the internet).
localrules:
    prefetch,
    prepare_data,
    build_tiny_model,
    aggregate,
    report,


# Every process of the run reads the same cache: this one, the jobs it starts
# (their environment is inherited, and sbatch exports it) and the jobs on a
# cluster (which parse this file again).
if config.get("hf_home"):
    os.environ.update(hub.cache_env(config["hf_home"]))

# A job on a cluster node (Snakemake runs it with --mode remote) never reaches
# for the network; local runs and the submit host's own steps keep it.
if workflow.remote_exec:
    os.environ.update(hub.OFFLINE_ENV)

HUB_ITEMS = [asdict(item) for item in hub.needs(config)]

# Say early, on the submit host, what offline jobs would miss.
if HUB_ITEMS and not (workflow.remote_exec or workflow.subprocess_exec):
    _lacking = hub.missing(hub.needs(config), *hub.cache_dirs(config.get("hf_home")))
    if _lacking:
        logger.warning(
            f"not yet in the Hugging Face cache: {', '.join(i.describe() for i in _lacking)}. "
            "Jobs on a cluster run offline: run `snakemake --cores 1 prefetch` here first."
        )


rule prefetch:
    log:
        "logs/prefetch/prefetch.log",
    conda:
        "../envs/train.yaml"
    params:
        needed=HUB_ITEMS,
        hf_home=config.get("hf_home"),
    script:
        "../scripts/prefetch.py"
