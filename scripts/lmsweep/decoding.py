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


class DecodingError(ValueError):
    """A decoding section that cannot be expanded; the message names the key."""


def _label(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def config_name(parameter: str, value) -> str:
    return f"{parameter}_{_label(value)}"


def check_settings(name: str, settings: dict) -> None:
    for key, value in settings.items():
        if key not in PARAMETERS:
            raise DecodingError(
                f"decoding config {name!r}: unknown parameter {key!r}; allowed: {', '.join(PARAMETERS)}"
            )
        kind = PARAMETERS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DecodingError(
                f"decoding config {name!r}: {key}={value!r} must be a {kind.__name__}"
            )
    if settings.get("num_beams", 1) < 1:
        raise DecodingError(f"decoding config {name!r}: num_beams={settings['num_beams']} must be >= 1")
    if settings.get("max_new_tokens", 1) < 1:
        raise DecodingError(f"decoding config {name!r}: max_new_tokens must be >= 1")
    if settings.get("do_sample"):
        if settings.get("top_k", 1) < 1:
            raise DecodingError(f"decoding config {name!r}: top_k={settings['top_k']} must be >= 1")
        if settings.get("temperature", 1.0) <= 0:
            raise DecodingError(
                f"decoding config {name!r}: temperature={settings['temperature']} must be > 0 "
                "when do_sample is true (set do_sample: false for greedy decoding)"
            )
        if not 0 < settings.get("top_p", 1.0) <= 1:
            raise DecodingError(f"decoding config {name!r}: top_p must be in (0, 1]")


def expand(section: dict) -> dict:
    """{name: settings} for the baseline, each swept value, and any named extras."""
    if "baseline" not in section:
        raise DecodingError("decoding.baseline is missing")
    baseline = dict(section["baseline"])
    for key in ("do_sample", "max_new_tokens"):
        if key not in baseline:
            raise DecodingError(f"decoding.baseline.{key} must be set explicitly")
    configs = {"baseline": baseline}
    for parameter, values in (section.get("sweep") or {}).items():
        for index, value in enumerate(values):
            name = config_name(parameter, value)
            if name in configs or value in values[:index]:
                raise DecodingError(f"decoding.sweep.{parameter}: value {value!r} is listed twice")
            configs[name] = {**baseline, parameter: value}
    for name, overrides in (section.get("extra") or {}).items():
        if name in configs:
            raise DecodingError(f"decoding.extra.{name}: the name is already used by the sweep")
        configs[name] = {**baseline, **overrides}
    for name, settings in configs.items():
        if not NAME.match(name) or ".." in name:
            raise DecodingError(
                f"decoding config name {name!r} is not allowed: use letters, digits, '_', '-' "
                "and '.', starting with a letter or digit"
            )
        check_settings(name, settings)
    return configs


def moved_parameters(section: dict) -> dict:
    """{config name: [parameter, value]} for every swept config (the baseline moves nothing)."""
    return {
        config_name(parameter, value): [parameter, value]
        for parameter, values in (section.get("sweep") or {}).items()
        for value in values
    }
