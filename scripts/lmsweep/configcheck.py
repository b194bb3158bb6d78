"""Config mistakes, said in one line each: the key, the bad value, what is allowed.

Snakemake's validate() stops at the first schema error and prints the whole
sub-schema; this lists every error, shortest first, in words a user can act on.
The semantic checks a schema cannot express (names that refer to each other,
files, sizes, hardware) follow in `study_problems`.
"""

import difflib
import os

BOUNDS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "minItems": "at least this many items:",
    "minProperties": "at least this many entries:",
}


def _where(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "the config"


def describe(error) -> str:
    where, value = _where(error), error.instance
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(k for k in value if k not in allowed)
        hints = [
            f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, allowed, 1)) else repr(k)
            for k in unknown
        ]
        return f"{where}: unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}"
    if kind == "enum":
        return f"{where}: {value!r} is not allowed; use one of {', '.join(map(str, error.validator_value))}"
    if kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        return f"{where}: {value!r} is a {type(value).__name__}, expected {expected}"
    if kind in BOUNDS:
        return f"{where}: {value!r} is out of range; it must be {BOUNDS[kind]} {error.validator_value}"
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return f"{where}: missing required key {', '.join(missing)}"
    if kind == "pattern":
        return (
            f"{where}: {value!r} is not allowed: use letters, digits, '_' and '-' "
            f"(pattern {error.validator_value}; it becomes a file path and a wildcard)"
        )
    if kind == "oneOf" and error.schema.get("oneOf") and all("required" in s for s in error.schema["oneOf"]):
        options = " or ".join(s["required"][0] for s in error.schema["oneOf"])
        return f"{where}: give exactly one of {options}"
    if kind == "not":
        return f"{where}: {value!r} is not allowed here"
    return f"{where}: {error.message}"


def schema_problems(config: dict, schema: dict) -> list:
    from jsonschema import Draft202012Validator

    errors = Draft202012Validator(schema).iter_errors(config)
    return [describe(e) for e in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator))]


def study_problems(config: dict, decoding_names) -> list:
    """What the schema cannot say. `config` has the schema's defaults filled in."""
    problems = []
    for name, model in config["models"].items():
        for decoding in model.get("base_decoding", []):
            if decoding not in decoding_names:
                problems.append(
                    f"models.{name}.base_decoding: {decoding!r} is not a decoding config; "
                    f"known: {', '.join(decoding_names)}"
                )
    dataset = config["dataset"]
    source = dataset["source"]
    from lmsweep.data import is_local

    if is_local(source) and not os.path.exists(source):
        problems.append(
            f"dataset.source: {source!r} does not exist (relative paths start from the working directory "
            f"{os.getcwd()})"
        )
    test, train = dataset["test_size"], dataset.get("train_size")
    fractions = [s for s in (test, train) if isinstance(s, float) and s < 1]
    if sum(fractions) > 1:
        problems.append(f"dataset: test_size {test} and train_size {train} add up to more than the whole dataset")
    if source == "synthetic":
        counts = [s for s in (test, train) if isinstance(s, int) or (isinstance(s, float) and s >= 1)]
        if sum(counts) > dataset["synthetic_size"]:
            problems.append(
                f"dataset: test_size {test} + train_size {train} exceed dataset.synthetic_size "
                f"{dataset['synthetic_size']}; lower them or raise synthetic_size"
            )
    if config["quantization"]["load_in_4bit"] and config["device"] == "cpu":
        problems.append("quantization.load_in_4bit: true needs CUDA, but device is cpu; set load_in_4bit: false")
    from lmsweep.models import LORA_TARGETS

    for name, model in config["models"].items():
        targets = model.get("lora", {}).get("target_modules") or config["lora"].get("target_modules")
        architecture = model.get("build", {}).get("architecture") or local_model_type(model.get("name_or_path"))
        if not targets and architecture and architecture not in LORA_TARGETS:
            problems.append(
                f"models.{name}: no default LoRA target modules for architecture {architecture!r}; "
                f"set models.{name}.lora.target_modules (defaults exist for {', '.join(sorted(LORA_TARGETS))})"
            )
    return problems


def local_model_type(name_or_path):
    """model_type of a local model folder (None for a Hub id: the finetune job checks it before loading)."""
    import json

    if not name_or_path or not os.path.isfile(os.path.join(name_or_path, "config.json")):
        return None
    with open(os.path.join(name_or_path, "config.json")) as fh:
        return json.load(fh).get("model_type")


def local_gpu_problems(config: dict) -> list:
    """4-bit on a machine without an NVIDIA driver, for runs whose jobs run on this machine.

    Checked when the run starts, not while the Snakefile is read: only then is
    it known whether jobs run here or on cluster nodes (the login node of a
    GPU cluster has no GPU, and need not).
    """
    if config["quantization"]["load_in_4bit"] and config["device"] != "cpu" and not cuda_visible():
        return [
            "quantization.load_in_4bit: true needs a CUDA GPU (bitsandbytes 4-bit), and this machine shows "
            "none (no /dev/nvidiactl); run on a GPU node (e.g. --workflow-profile profiles/slurm) "
            "or set quantization.load_in_4bit: false"
        ]
    return []


def cuda_visible() -> bool:
    """A cheap look for an NVIDIA driver, without importing torch at parse time."""
    return os.path.exists("/dev/nvidiactl")
