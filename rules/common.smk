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

from lmsweep.configcheck import local_gpu_problems, schema_problems, study_problems
from lmsweep.decoding import DecodingError, moved_parameters
from lmsweep.decoding import expand as expand_decoding
from lmsweep.warm import SOCKET_ENV

VARIANTS = ["finetuned", "base"]


def config_error(problems):
    raise WorkflowError(
        "config error (nothing was run):\n  - " + "\n  - ".join(problems)
    )


with open(os.path.join(workflow.basedir, "config.schema.yaml")) as _schema:
    _problems = schema_problems(config, yaml.safe_load(_schema))
if _problems:
    config_error(_problems)
validate(config, "../config.schema.yaml")

try:
    DECODING = expand_decoding(config["decoding"])
except DecodingError as err:
    config_error([str(err)])

_problems = study_problems(config, list(DECODING))
if _problems:
    config_error(_problems)


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    model=_alternatives(config["models"]),
    variant="|".join(VARIANTS),
    decoding=_alternatives(DECODING),


def runs():
    """(model, variant, decoding) of every generation the study makes."""
    for model, entry in config["models"].items():
        for decoding in DECODING:
            yield model, "finetuned", decoding
        for decoding in entry["base_decoding"]:
            yield model, "base", decoding


def all_scores():
    return [f"results/score/{m}/{v}/{d}.json" for m, v, d in runs()]


def all_perplexities():
    return [
        f"results/perplexity/{m}/{v}.json" for m in config["models"] for v in VARIANTS
    ]


def all_benchmarks():
    """The benchmark files of every heavy job: the runtime table's input."""
    files = [f"benchmarks/finetune/{m}.tsv" for m in config["models"]]
    files += [
        f"benchmarks/{step}/{m}/{v}/{d}.tsv"
        for m, v, d in runs()
        for step in ("generate", "score")
    ]
    files += [
        f"benchmarks/perplexity/{m}/{v}.tsv" for m in config["models"] for v in VARIANTS
    ]
    return files


def is_built(model):
    return "build" in config["models"][model]


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


def get_model_params(wildcards):
    """How to load one model: everything that changes its weights on load."""
    entry = config["models"][wildcards.model]
    return {
        "revision": entry.get("revision"),
        "trust_remote_code": entry["trust_remote_code"],
        "quantization": config["quantization"],
    }


def get_lora(wildcards):
    return {**config["lora"], **config["models"][wildcards.model].get("lora", {})}


def get_training(wildcards):
    return {
        **config["training"],
        **config["models"][wildcards.model].get("training", {}),
    }


def get_build(wildcards):
    return config["models"][wildcards.model]["build"]


def get_decoding(wildcards):
    return DECODING[wildcards.decoding]


def get_resource(rule, key, default):
    return config["resources"].get(rule, {}).get(key, default)


def gpus():
    return config["resources"]["gpu_per_job"]


def check_local_gpu():
    """At the start of a run whose jobs run on this machine: is there a GPU for 4-bit?"""
    if workflow.local_exec and not workflow.remote_exec and not workflow.dryrun:
        problems = local_gpu_problems(config)
        if problems:
            config_error(problems)


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
