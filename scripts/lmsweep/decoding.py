"""Decoding configurations: a baseline plus one-parameter-at-a-time sweeps.

    baseline: {do_sample: true, top_k: 50, num_beams: 1, temperature: 0.8, max_new_tokens: 256}
    sweep: {top_k: [10, 25], num_beams: [4]}

expands to `baseline`, `top_k_10`, `top_k_25` and `num_beams_4`, each the
baseline with one value moved. The names become file paths and wildcards.
"""

import re

# The generate() arguments a decoding config may set.
PARAMETERS = {
    "do_sample": bool,
    "top_k": int,
    "top_p": float,
    "num_beams": int,
    "temperature": float,
    "repetition_penalty": float,
    "max_new_tokens": int,
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Labels the tables give rows that are not decoding configs: perplexity is teacher forced.
RESERVED = {"teacher_forced": "scores.csv and the report label the perplexity rows teacher_forced"}


class DecodingError(ValueError):
    """A decoding section that cannot be expanded; the message names the key."""


def _label(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def config_name(parameter: str, value) -> str:
    return f"{parameter}_{_label(value)}"


def settings_problem(settings: dict) -> str | None:
    """What is wrong with one config's settings (the first thing found), or None."""
    for key, value in settings.items():
        if key not in PARAMETERS:
            return f"unknown parameter {key!r}; allowed: {', '.join(PARAMETERS)}"
        kind = PARAMETERS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key}={value!r} must be a {kind.__name__}"
    if settings.get("num_beams", 1) < 1:
        return f"num_beams={settings['num_beams']} must be >= 1"
    if settings.get("max_new_tokens", 1) < 1:
        return "max_new_tokens must be >= 1"
    if settings.get("do_sample"):
        if settings.get("top_k", 1) < 1:
            return f"top_k={settings['top_k']} must be >= 1"
        if settings.get("temperature", 1.0) <= 0:
            return (
                f"temperature={settings['temperature']} must be > 0 "
                "when do_sample is true (set do_sample: false for greedy decoding)"
            )
        if not 0 < settings.get("top_p", 1.0) <= 1:
            return "top_p must be in (0, 1]"
    return None


def check_settings(name: str, settings: dict) -> None:
    problem = settings_problem(settings)
    if problem:
        raise DecodingError(f"decoding config {name!r}: {problem}")


def names(section: dict) -> list:
    """The config names a section makes, read without checking it (for messages that list them)."""
    sweep = section.get("sweep") if isinstance(section.get("sweep"), dict) else {}
    extra = section.get("extra") if isinstance(section.get("extra"), dict) else {}
    swept = [config_name(p, v) for p, values in sweep.items() if isinstance(values, list) for v in values]
    return list(dict.fromkeys(["baseline", *swept, *extra]))


def problems(section: dict) -> list:
    """Every problem of a decoding section, one line each (empty: expand() will succeed)."""
    return _expand(section)[1]


def expand(section: dict) -> dict:
    """{name: settings} for the baseline, each swept value, and any named extras."""
    configs, found = _expand(section)
    if found:
        raise DecodingError("\n".join(found))
    return configs


def _expand(section: dict):
    if "baseline" not in section:
        return {}, ["decoding.baseline is missing"]
    baseline = dict(section["baseline"])
    found = [f"decoding.baseline.{key} must be set explicitly" for key in ("do_sample", "max_new_tokens")
             if key not in baseline]
    configs = {"baseline": baseline}
    for parameter, values in (section.get("sweep") or {}).items():
        if not isinstance(values, list):
            found.append(f"decoding.sweep.{parameter}: {values!r} is not a list of values")
            continue
        for index, value in enumerate(values):
            name = config_name(parameter, value)
            if name in configs or value in values[:index]:
                found.append(f"decoding.sweep.{parameter}: value {value!r} is listed twice")
            elif parameter in baseline and value == baseline[parameter]:
                found.append(
                    f"decoding.sweep.{parameter}: {value!r} is the baseline's value, so {name} would be "
                    "the baseline config twice; remove it from the sweep"
                )
            else:
                configs[name] = {**baseline, parameter: value}
    for name, overrides in (section.get("extra") or {}).items():
        if name in configs:
            found.append(f"decoding.extra.{name}: the name is already used by the sweep")
        elif not isinstance(overrides, dict):
            found.append(f"decoding.extra.{name}: {overrides!r} is not a mapping of generate() settings")
        else:
            configs[name] = {**baseline, **overrides}
    # A problem every config inherits from the baseline is said once, for the baseline.
    inherited = settings_problem(baseline)
    for name, settings in configs.items():
        if name in RESERVED:
            found.append(f"decoding config name {name!r} is reserved ({RESERVED[name]}); choose another name")
            continue
        if not NAME.match(name) or ".." in name:
            found.append(
                f"decoding config name {name!r} is not allowed: use letters, digits, '_', '-' "
                "and '.', starting with a letter or digit"
            )
            continue
        problem = settings_problem(settings)
        if problem and (name == "baseline" or problem != inherited):
            found.append(f"decoding config {name!r}: {problem}")
    return configs, found


def moved_parameters(section: dict) -> dict:
    """{config name: [parameter, value]} for every swept config (the baseline moves nothing)."""
    return {
        config_name(parameter, value): [parameter, value]
        for parameter, values in (section.get("sweep") or {}).items()
        for value in values
    }
