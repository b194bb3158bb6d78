"""Adaptation configs: the baseline adapter and one-setting-at-a-time sweeps around it, as decoding is swept.

The config's `lora`, `training` and `quantization` sections (with a model's
own overrides) are the baseline adaptation: its adapter is the `finetuned`
variant. `adaptation.sweep` moves one setting away from it at a time:

    adaptation:
      sweep: {r: [4, 32], learning_rate: [1.0e-4]}
      alpha: follows_rank

makes the adaptations `r_4`, `r_32` and `learning_rate_0.0001`, each one
more adapter per model, named like a decoding config. Each is also the
variant of its runs (results/generate/<model>/r_4/...), beside `finetuned`
and `base`. Its adapter lies in results/finetune/<model>@r_4/.

Alpha and the rank: LoRA scales its update by alpha / r. Under
`alpha: follows_rank` (the default) a swept rank keeps the baseline's
scale, alpha = baseline alpha x r / baseline r, so the sweep moves the
capacity alone; under `fixed` alpha stays at the baseline's and the scale
moves with the rank too. Alpha can be swept on its own as well.
"""

from __future__ import annotations

import re

# Each setting a sweep may move: its section, its key there.
PARAMETERS = {
    "r": ("lora", "r"),
    "alpha": ("lora", "alpha"),
    "dropout": ("lora", "dropout"),
    "target_modules": ("lora", "target_modules"),
    "learning_rate": ("training", "learning_rate"),
    "epochs": ("training", "epochs"),
    "max_steps": ("training", "max_steps"),
    "load_in_4bit": ("quantization", "load_in_4bit"),
}
# target_modules as a sweep value: the architecture's attention projections only, or every projection (lmsweep.models).
TARGETS = ("attention", "all")
ALPHA_RULES = ("follows_rank", "fixed")
# The variants the study already has: the baseline adapter and the base model alone.
RESERVED = ("finetuned", "base")
# Between a model's name and an adaptation's in the adapter's folder: results/finetune/<model>@<adaptation>.
SEPARATOR = "@"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _label(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _shown(value) -> str:
    """A value as the config writes it: false, 4, 0.001, 'attention'."""
    return _label(value) if isinstance(value, bool) else repr(value)


def config_name(parameter: str, value) -> str:
    return f"{parameter}_{_label(value)}"


def expand(sweep: dict) -> dict:
    """{adaptation name: (parameter, value)} of a checked sweep, in the order given."""
    return {config_name(p, v): (p, v) for p, values in (sweep or {}).items() for v in values}


def folder_part(variant: str) -> str:
    """The adaptation's part of an adapter's folder name: '' for the baseline adapter (finetuned), '@<name>'."""
    return "" if variant == "finetuned" else SEPARATOR + variant


def sections(config: dict, model: str, adaptation: str | None) -> dict:
    """{lora, training, quantization} of one model's adapter: the baseline (with the model's overrides), one
    setting moved for a swept adaptation (None: the baseline)."""
    entry = config["models"][model]
    out = {"lora": {**config["lora"], **entry.get("lora", {})},
           "training": {**config["training"], **entry.get("training", {})},
           "quantization": dict(config["quantization"])}
    if adaptation is None:
        return out
    parameter, value = expand(config["adaptation"]["sweep"])[adaptation]
    section, key = PARAMETERS[parameter]
    if parameter == "r" and config["adaptation"]["alpha"] == "follows_rank":
        lora = out["lora"]
        lora["alpha"] = lora["alpha"] * value / lora["r"]
    out[section][key] = value
    return out


def _baseline_value(config: dict, model: str | None, parameter: str):
    section, key = PARAMETERS[parameter]
    if model is None or section == "quantization":
        return config[section].get(key), section
    own = config["models"][model].get(section, {})
    return (own[key], f"models.{model}.{section}") if key in own else (config[section].get(key), section)


def problems(config: dict, usable=lambda *paths: True) -> list:
    """What the schema cannot say about `adaptation`, one line each (config has the schema's defaults)."""
    from lmsweep import decoding

    section = config.get("adaptation") or {}
    sweep = {p: v for p, v in (section.get("sweep") or {}).items()
             if p in PARAMETERS and isinstance(v, list) and usable(("adaptation", "sweep", p))}
    found = []
    for parameter, values in sweep.items():
        where = f"adaptation.sweep.{parameter}"
        for index, value in enumerate(values):
            name = config_name(parameter, value)
            if value in values[:index] or name in [config_name(parameter, v) for v in values[:index]]:
                found.append(f"{where}: value {value!r} is listed twice")
                continue
            if not NAME.match(name):
                found.append(f"{where}: {value!r} makes the adaptation name {name!r}, which is no folder name; "
                             "use letters, digits, '_', '-' and '.'")
                continue
            found += _equal_to_baseline(config, parameter, value, name, where)
        if parameter == "epochs":
            capped = [(key, steps) for key, steps in _max_steps(config) if steps > 0]
            if capped:
                key, steps = capped[0]
                found.append(f"{where}: {key}.max_steps is {steps}, which caps training whatever the epochs, so "
                             "every epochs value would train the same adapter; sweep max_steps instead, or set "
                             f"{key}.max_steps: -1")
        if parameter == "load_in_4bit" and True in values and config.get("device") == "cpu":
            found.append(f"{where}: true needs CUDA (4-bit through bitsandbytes), but device is cpu; remove it")
        if parameter == "target_modules" and "attention" in values:
            found += _attention_problems(config, usable)
    for name in section.get("models") or []:
        if name not in config["models"]:
            found.append(f"adaptation.models: {name!r} is no model of the study; models: {', '.join(config['models'])}")
    if usable(("adaptation", "decoding"), ("decoding",)):
        known = decoding.names(config["decoding"])
        for name in section.get("decoding", []):
            if name not in known:
                found.append(f"adaptation.decoding: {name!r} is no decoding config; known: {', '.join(known)}")
    return found


def _max_steps(config: dict) -> list:
    """(section key, max_steps) of the baseline and of every model that sets its own."""
    out = [("training", config["training"]["max_steps"])]
    out += [(f"models.{m}.training", e["training"]["max_steps"]) for m, e in config["models"].items()
            if "max_steps" in e.get("training", {})]
    return out


def _equal_to_baseline(config: dict, parameter: str, value, name: str, where: str) -> list:
    """A value that is the baseline's (for every model, or for one that sets its own) would train it twice."""
    found = []
    base, key = _baseline_value(config, None, parameter)
    if _same(parameter, value, base):
        found.append(f"{where}: {_shown(value)} is the baseline's value ({key}.{PARAMETERS[parameter][1]}), so {name} "
                     "would train the baseline adapter again; remove it from the sweep")
        return found
    for model in (config.get("adaptation") or {}).get("models") or config["models"]:
        if model not in config["models"]:
            continue
        own, key = _baseline_value(config, model, parameter)
        if key.startswith("models.") and _same(parameter, value, own):
            found.append(f"{where}: {_shown(value)} is {model}'s own value ({key}.{PARAMETERS[parameter][1]}), "
                         f"so {name} "
                         f"would train {model}'s baseline adapter again; remove it, or the model's override")
    return found


def _same(parameter: str, value, baseline) -> bool:
    if parameter == "target_modules":
        return value == "all" and baseline is None  # null: every projection, as "all"
    return value == baseline


def _attention_problems(config: dict, usable) -> list:
    """Models whose architecture has no known attention projections (a target_modules: attention sweep)."""
    from lmsweep.configcheck.study import architecture
    from lmsweep.models import ATTENTION_TARGETS

    found = []
    for name, model in config["models"].items():
        if not usable(("models", name, "build"), ("models", name, "name_or_path")):
            continue
        known = architecture(model)
        if known and known[0] not in ATTENTION_TARGETS:
            found.append(f"adaptation.sweep.target_modules: 'attention' is not known for {name}'s architecture "
                         f"{known[0]!r} (known: {', '.join(sorted(ATTENTION_TARGETS))}); remove it from the sweep")
    return found
