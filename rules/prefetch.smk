# prefetch: download every Hub model and dataset of the study into the
# Hugging Face cache the jobs read, on the submit host (it needs the internet).
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


rule prefetch:
    log:
        "logs/prefetch/prefetch.log",
    conda:
        "../envs/train.yaml"
    params:
        settings=settings_of("prefetch"),
    script:
        "../scripts/prefetch.py"
