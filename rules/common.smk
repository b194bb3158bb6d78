# The config checks, then helpers: get_* input and params functions, wildcard constraints.
# Every setting a job depends on reaches it through params:, so that a change
# reruns exactly the jobs whose settings changed.

import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))

import yaml
from snakemake.utils import validate

from lmsweep.codedigest import step_code
from lmsweep.data import is_local as is_local_dataset
from lmsweep.configcheck import config_problems, local_gpu_problems
from lmsweep.decoding import moved_parameters
from lmsweep.decoding import expand as expand_decoding
from lmsweep import prefetch as hub
from lmsweep.modelsource import describe as describe_model_source
from lmsweep.warm import SOCKET_ENV

VARIANTS = ["finetuned", "base"]


def config_error(problems):
    raise WorkflowError(
        "config error (nothing was run):\n  - " + "\n  - ".join(problems)
    )


# Every mistake at once: schema and semantic checks, and keys given twice in the
# config files Snakemake read (PyYAML keeps the last of two equal keys silently).
# This fills in the schema's defaults; validate() then passes and stays the last word.
with open(os.path.join(workflow.basedir, "config.schema.yaml")) as _schema:
    _problems = config_problems(config, yaml.safe_load(_schema), workflow.configfiles)
if _problems:
    config_error(_problems)
validate(config, "../config.schema.yaml")
DECODING = expand_decoding(config["decoding"])


# {config name: [parameter, value]} of each swept config.
MOVED = moved_parameters(config["decoding"])


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    model=_alternatives(config["models"]),
    variant="|".join(VARIANTS),
    decoding=_alternatives(DECODING),
    rep=r"\d+",


def code_of(rule):
    """{module: digest} of the lmsweep code the rule's script runs (lmsweep.codedigest): a param, so that an
    edit of that code reruns the rule's jobs, and only theirs (Snakemake's `code` trigger sees the script)."""
    scripts = os.path.join(workflow.basedir, "scripts")
    return step_code(os.path.join(scripts, f"{rule}.py"), scripts)


def replicates(decoding):
    """Seed replicates of a decoding config: sampled configs get generation.replicates, the rest 1."""
    return config["generation"]["replicates"] if DECODING[decoding]["do_sample"] else 1


def runs():
    """(model, variant, decoding, replicate) of every generation the study makes."""
    for model, entry in config["models"].items():
        for variant, decodings in (
            ("finetuned", DECODING),
            ("base", entry["base_decoding"]),
        ):
            for decoding in decodings:
                for rep in range(replicates(decoding)):
                    yield model, variant, decoding, rep


def all_scores():
    return [f"results/score/{m}/{v}/{d}/rep{r}.json" for m, v, d, r in runs()]


def all_per_example():
    return [
        f"results/score/{m}/{v}/{d}/rep{r}.per_example.csv" for m, v, d, r in runs()
    ]


def all_generation_info():
    return [f"results/generate/{m}/{v}/{d}/rep{r}.info.json" for m, v, d, r in runs()]


def all_perplexities():
    return [
        f"results/perplexity/{m}/{v}.json" for m in config["models"] for v in VARIANTS
    ]


def all_perplexity_examples():
    return [
        f"results/perplexity/{m}/{v}.per_example.csv"
        for m in config["models"]
        for v in VARIANTS
    ]


def all_benchmarks():
    """The benchmark files of every heavy job: the runtime table's input."""
    files = [f"benchmarks/finetune/{m}.tsv" for m in config["models"]]
    if config["inference"]["weights"] == "merged":
        files += [f"benchmarks/merge_adapter/{m}.tsv" for m in config["models"]]
    files += [
        f"benchmarks/{step}/{m}/{v}/{d}/rep{r}.tsv"
        for m, v, d, r in runs()
        for step in ("generate", "score")
    ]
    files += [
        f"benchmarks/perplexity/{m}/{v}.tsv" for m in config["models"] for v in VARIANTS
    ]
    return files


def is_built(model):
    return "build" in config["models"][model]


def get_dataset_input(wildcards):
    """dataset.source when it is a local file (as data.load_records reads it), else nothing."""
    source = config["dataset"]["source"]
    return [os.path.expanduser(source)] if source != "synthetic" and is_local_dataset(source) else []


def get_base_model(wildcards):
    """The folder or Hub id a model loads from."""
    if is_built(wildcards.model):
        return f"results/build_tiny_model/{wildcards.model}"
    return config["models"][wildcards.model]["name_or_path"]


def get_base_model_input(wildcards):
    """The built model folder as an input; nothing for a Hub model."""
    return [get_base_model(wildcards)] if is_built(wildcards.model) else []


def get_adapter_input(wildcards):
    if wildcards.variant == "finetuned":
        return f"results/finetune/{wildcards.model}/adapter"
    return []


def merged(wildcards):
    """Whether a generate or perplexity job reads the merged model (inference.weights: merged)."""
    return (
        config["inference"]["weights"] == "merged" and wildcards.variant == "finetuned"
    )


def get_inference_inputs(wildcards):
    """The model files a generate or perplexity job reads: the merged model, or the base and the adapter."""
    if merged(wildcards):
        return {"base": f"results/merge_adapter/{wildcards.model}"}
    return {
        "base": get_base_model_input(wildcards),
        "adapter": get_adapter_input(wildcards),
    }


def get_inference_model(wildcards):
    if merged(wildcards):
        return f"results/merge_adapter/{wildcards.model}"
    return get_base_model(wildcards)


def get_inference_load(wildcards):
    """How a generate or perplexity job loads its model, and which weights make its numbers."""
    load = get_model_params(wildcards)
    weights = config["inference"]["weights"]
    if merged(wildcards):
        # The merged folder holds plain weights in the compute dtype: loaded as they are.
        load = {
            **load,
            "quantization": {"load_in_4bit": False},
            "revision": None,
            "snapshot": None,
            "merged_from_4bit": config["quantization"]["load_in_4bit"],
        }
    return {**load, "inference": weights}


_SOURCES = {}


def model_source(model):
    """A fingerprint of a local model folder, or the cached Hub snapshot's commit (lmsweep.modelsource).

    Read once per model when the workflow is read: a change of either reruns the model's jobs.
    """
    if model not in _SOURCES:
        entry = config["models"][model]
        _SOURCES[model] = (
            None
            if "build" in entry
            else describe_model_source(
                entry["name_or_path"], entry.get("revision"), config.get("hf_home")
            )
        )
    return _SOURCES[model]


def get_model_params(wildcards):
    """How to load one model: everything that changes its weights on load."""
    entry = config["models"][wildcards.model]
    source = model_source(wildcards.model)
    return {
        "revision": entry.get("revision"),
        # The commit the jobs load (None: a built model, a local folder, or not yet cached).
        "snapshot": (source or {}).get("commit"),
        "source": source,
        "trust_remote_code": entry["trust_remote_code"],
        "quantization": config["quantization"],
    }


def get_generation(wildcards):
    """The decoding config of one generate job, and where unset fields come from."""
    return {
        "settings": DECODING[wildcards.decoding],
        "decoding_defaults": config["models"][wildcards.model]["decoding_defaults"],
        "sweep": MOVED.get(wildcards.decoding),
    }


def hub_items():
    """The Hub models and dataset of the study, as prefetch's params."""
    from dataclasses import asdict

    return [asdict(item) for item in hub.needs(config)]


def hub_environment():
    """Environment of every process of the run: the study's cache, and offline on cluster nodes.

    The jobs Snakemake starts inherit it (sbatch exports it); a job on a cluster
    node parses the workflow again, with --mode remote, and never reaches for the network.
    """
    env = hub.cache_env(config["hf_home"]) if config.get("hf_home") else {}
    if workflow.remote_exec:
        env.update(hub.OFFLINE_ENV)
    return env


def warn_uncached():
    """Say early, on the submit host, what offline jobs would miss, and what has no commit to pin yet."""
    items = hub.needs(config)
    if items and not (workflow.remote_exec or workflow.subprocess_exec):
        lacking = hub.missing(items, *hub.cache_dirs(config.get("hf_home")))
        if lacking:
            logger.warning(
                f"not yet in the Hugging Face cache: {', '.join(i.describe() for i in lacking)}. "
                "Jobs on a cluster run offline: run `snakemake --cores 1 prefetch` here first. "
                "Jobs record the snapshot commit they load only for cached models: a model downloaded by "
                "its first job reruns its jobs once, on the next run."
            )


def built_from():
    """(output, [files made from it]) for every intermediate output of the study."""
    split = [
        f"results/prepare_data/{name}"
        for name in ("train.jsonl", "test.jsonl", "manifest.json")
    ]
    report_md = "results/report/report.md"
    first = []
    pairs = []
    for model in config["models"]:
        adapter = f"results/finetune/{model}/adapter"
        generations = {
            variant: [
                f"results/generate/{m}/{v}/{d}/rep{r}.jsonl"
                for m, v, d, r in runs()
                if m == model and v == variant
            ]
            for variant in VARIANTS
        }
        perplexity = {v: f"results/perplexity/{model}/{v}.json" for v in VARIANTS}
        downstream = generations["finetuned"] + [perplexity["finetuned"]]
        if config["inference"]["weights"] == "merged":
            pairs.append((f"results/merge_adapter/{model}", downstream))
            downstream = [f"results/merge_adapter/{model}"]
        pairs.append((adapter, downstream))
        pairs.append((f"results/finetune/{model}/train_log.csv", [report_md]))
        base_users = [adapter] + generations["base"] + [perplexity["base"]]
        if is_built(model):
            pairs.append((f"results/build_tiny_model/{model}", base_users))
            first.append(f"results/build_tiny_model/{model}")
        first += base_users
        for v in VARIANTS:
            for f in (
                perplexity[v],
                perplexity[v].replace(".json", ".per_example.csv"),
            ):
                pairs.append((f, ["results/scores.csv"]))
    for m, v, d, r in runs():
        stem = f"{m}/{v}/{d}/rep{r}"
        pairs.append((f"results/generate/{stem}.jsonl", [f"results/score/{stem}.json"]))
        pairs.append((f"results/generate/{stem}.info.json", [report_md]))
        for f in (
            f"results/score/{stem}.json",
            f"results/score/{stem}.per_example.csv",
        ):
            pairs.append((f, ["results/scores.csv"]))
    pairs += [(f, first) for f in split]
    pairs += [
        (f, [report_md]) for f in ("results/scores.csv", "results/comparisons.csv")
    ]
    return pairs


def warn_deleted():
    """Name the outputs deleted while what was made from them is still there, and how to rebuild them.

    Snakemake leaves such a file missing (the files made from it look up to
    date, and nothing asks for it again), so deleting an intermediate output
    does not rebuild it by itself; --forcerun does, with everything made from it.
    """
    if workflow.remote_exec or workflow.subprocess_exec:
        return
    deleted = [
        f
        for f, made in built_from()
        if not os.path.exists(f) and any(os.path.exists(m) for m in made)
    ]
    if deleted:
        shown = " ".join(deleted[:20]) + (" ..." if len(deleted) > 20 else "")
        logger.warning(
            f"{len(deleted)} output(s) were deleted, but what was made from them is still there, so Snakemake "
            f"will not rebuild them: {shown}\nTo rebuild them and everything made from them, run again with "
            f"--forcerun {shown}"
        )


def warn_unrecorded():
    """Results exist, but Snakemake's record of how they were made is gone (.snakemake/ deleted or the
    results copied without it): then no changed setting, script or code reruns anything. Say so."""
    import base64

    from snakemake.settings.types import PersistenceBackend

    if workflow.remote_exec or workflow.subprocess_exec:
        return
    made = "results/prepare_data/manifest.json"
    if not os.path.exists(made):
        return
    if workflow.workflow_settings.persistence_backend == PersistenceBackend.FILE:
        record = os.path.join(".snakemake", "metadata", base64.urlsafe_b64encode(made.encode()).decode())
    else:
        record = os.path.join(".snakemake", "metadata.db")
    if not os.path.exists(record):
        logger.warning(
            "results/ holds outputs, but Snakemake's record of how they were made is gone (.snakemake/ was "
            "deleted, or the results were copied without it). Snakemake cannot see a changed setting, script or "
            "lmsweep code for them now, so nothing of that reruns by itself. If anything changed since they were "
            "made, bring them up to date with `snakemake --cores 1 --forceall` (everything) or `--forcerun <rule>`."
        )


def note_report_mode():
    """`snakemake --report` packages results/ as it is: it runs no job, stale or not."""
    if "--report" in sys.argv and os.path.exists("results"):
        logger.warning(
            "--report packages the results as they are now: it reruns nothing. If the config, the data or the "
            "code changed since the last run, `snakemake -n` lists what is out of date; run `snakemake --cores 1` "
            "first to bring the results up to date."
        )


def mark_forced_training():
    """Tell this run's finetune jobs (environment: local forks, sbatch exports it) whether Snakemake was asked to
    train again (--forceall, --forcerun finetune or an adapter): then a finished run's checkpoints of the same
    identity are not reloaded (lmsweep.train). Called at the run's start, once the command line is known."""
    if workflow.remote_exec or workflow.subprocess_exec or workflow.dag_settings is None:
        return  # a cluster node's job is always run with --force: the submit host decided
    s = workflow.dag_settings
    named = list(s.forcerun) + (list(s.targets) if s.forcetargets else [])
    forced = s.forceall or any(str(f) == "finetune" or "results/finetune/" in str(f) for f in named)
    if forced:
        os.environ["LMSWEEP_RETRAIN"] = "1"
    else:
        os.environ.pop("LMSWEEP_RETRAIN", None)


def finetune_processes():
    """Training processes of one finetune job (one per GPU); part of what identifies the adapter."""
    return max(1, get_resource("finetune", "gpus", gpus()))


def get_lora(wildcards):
    return {**config["lora"], **config["models"][wildcards.model].get("lora", {})}


def get_training(wildcards):
    return {
        **config["training"],
        **config["models"][wildcards.model].get("training", {}),
    }


def get_build(wildcards):
    return config["models"][wildcards.model]["build"]


def get_resource(rule, key, default):
    return config["resources"].get(rule, {}).get(key, default)


def gpus():
    return config["resources"]["gpu_per_job"]


def check_local_gpu():
    """At the start of a run whose jobs run on this machine: a GPU for 4-bit, and enough for training?"""
    if workflow.local_exec and not workflow.remote_exec and not workflow.dryrun:
        # Snakemake scales a job's gpu down to this limit silently: check it against the config.
        limit = workflow.global_resources.get("gpu")
        limit = limit.value if limit is not None else None
        problems = local_gpu_problems(config, limit)
        if problems:
            config_error(problems)


def share_gpus():
    """Local runs on a machine with GPUs: each GPU job claims its own devices (lmsweep.gpus)."""
    from lmsweep import gpus as devices

    if (
        not workflow.local_exec
        or workflow.remote_exec
        or workflow.dryrun
        or config["device"] == "cpu"
    ):
        return
    visible = devices.visible_devices()
    if not visible:
        return
    os.environ[devices.LOCKS_ENV] = os.path.abspath(".snakemake/lmsweep-gpus")
    os.environ[devices.DEVICES_ENV] = ",".join(visible)
    limit = workflow.global_resources.get("gpu")
    limit = getattr(limit, "value", limit)
    if limit is not None and int(limit) > len(visible):
        config_error(
            [
                f"this run may use {limit} GPUs at a time (--resources gpu={limit}), but this machine shows "
                f"{len(visible)} ({', '.join(visible)}); use --resources gpu={len(visible)}"
            ]
        )
    if limit is not None and int(limit) < len(visible):
        logger.info(
            f"{len(visible)} GPUs on this machine; this run uses {limit} at a time: "
            f"--resources gpu={len(visible)} runs {len(visible)} GPU jobs at once, each on its own device"
        )


def start_warm_server():
    """Start lmsweep.warm's server for a local run on Linux without conda envs (see warm.py)."""
    from snakemake.settings.types import DeploymentMethod
    import subprocess
    import tempfile
    import time

    from lmsweep.warm import is_supported

    if (
        not config["warm_start"]
        or not workflow.local_exec
        or workflow.remote_exec
        or workflow.subprocess_exec
        or DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    ):
        return
    if not is_supported():
        logger.warning(
            f"warm start: not on {sys.platform} (forking a preloaded process is safe on Linux only); jobs run cold"
        )
        return
    path = os.path.join(tempfile.mkdtemp(prefix="lmsweep-warm-"), "socket")
    os.makedirs("logs", exist_ok=True)
    # bitsandbytes stays hidden in the server whatever quantization says: its
    # import initialises CUDA, which would break every fork; 4-bit jobs import
    # it in their own fork.
    server = subprocess.Popen(
        [
            sys.executable,
            os.path.join(workflow.basedir, "scripts", "lmsweep", "warm.py"),
            path,
            str(os.getpid()),
        ],
        stdout=open("logs/warm_start.log", "w"),
        stderr=subprocess.STDOUT,
        # The forks inherit the server's sys.path: keep the user's PYTHONPATH in it.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p
                for p in [
                    os.path.join(workflow.basedir, "scripts"),
                    os.environ.get("PYTHONPATH"),
                ]
                if p
            ),
        },
    )
    deadline = time.time() + 120
    while not os.path.exists(path) and server.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    if os.path.exists(path):
        os.environ[SOCKET_ENV] = path
        logger.info(f"warm start: job scripts run from one preloaded process ({path})")
    else:
        server.kill()
        logger.warning(
            "warm start: the server did not come up (logs/warm_start.log); jobs run cold"
        )
