"""Typed settings: what a rule passes to its step, one frozen dataclass per config section.

The config, once checked and filled in with the schema's defaults
(lmsweep.configcheck), is the only source of a value: these classes have no
defaults of their own. `from_mapping` builds one from a config section and
refuses a missing or unknown key, so a step never reads a setting by whether
a key happens to be there. A rule passes its settings as `as_mapping`'s
plain dict: Snakemake compares params by their repr only for builtin types
(a dataclass param would be ignored by its params trigger), so a changed
setting reruns exactly the jobs it reaches; the job types it again.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A mapping that does not hold the settings it should; the message names the key."""


def _convert(kind, value, where: str):
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except SettingsError:
                continue
        raise SettingsError(f"{where}: {value!r} is none of {kind}")
    if dataclasses.is_dataclass(kind):
        return from_mapping(kind, value, where) if not isinstance(value, kind) else value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{where}: {value!r} is not a list")
        (item,) = typing.get_args(kind)[:1] or (typing.Any,)
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise SettingsError(f"{where}: {value!r} is not a mapping")
        return dict(value)
    if kind is typing.Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SettingsError(f"{where}: {value!r} is a {type(value).__name__}, not a {kind.__name__}")
        return value
    return value


def from_mapping(cls, data, where: str = ""):
    """An instance of the dataclass `cls` from a mapping with exactly its fields (nested ones converted)."""
    name = where or cls.__name__
    if not isinstance(data, Mapping):
        raise SettingsError(f"{name}: {data!r} is not a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(f for f, spec in fields.items() if f not in data and spec.default is dataclasses.MISSING
                     and spec.default_factory is dataclasses.MISSING)
    if unknown or missing:
        raise SettingsError(f"{name}: " + "; ".join(
            ([f"unknown key {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"] if missing
                                                                          else [])))
    return cls(**{k: _convert(hints[k], v, f"{name}.{k}") for k, v in data.items()})


def as_mapping(settings) -> dict:
    """The plain mapping of a settings object (JSON-ready), as from_mapping takes it back."""
    return dataclasses.asdict(settings)


@dataclass(frozen=True)
class Dataset:
    source: str
    split: str
    revision: str | None
    synthetic_size: int
    test_size: float
    train_size: float | None
    on_invalid: str
    duplicates: str


@dataclass(frozen=True)
class Build:
    """A tiny random-weight model of a real architecture (the demo, the tests)."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    max_position_embeddings: int


@dataclass(frozen=True)
class Gguf:
    """A pretrained model shipped as one GGUF file: where it lies and its sha256."""

    file: str  # a path, or package:<module>/<file> for a file a Python package ships
    sha256: str


@dataclass(frozen=True)
class Quantization:
    load_in_4bit: bool
    quant_type: str
    double_quant: bool
    compute_dtype: str


@dataclass(frozen=True)
class Lora:
    r: int
    alpha: float
    dropout: float
    target_modules: list[str] | str | None  # a list, None (every projection), or "attention"/"all" (a sweep's)
    modules_to_save: list[str]


@dataclass(frozen=True)
class Training:
    epochs: float
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    lr_scheduler: str
    warmup: float
    weight_decay: float
    optim: str
    max_length: int
    gradient_checkpointing: bool
    padding_free: bool
    logging_steps: int
    save_steps: int
    validation_size: int  # training records held out for the validation loss (lmsweep.trainlog.hold_out)


@dataclass(frozen=True)
class Load:
    """How a step loads a model: what identifies its weights, and which weights make its numbers.

    `weights`: "as_trained" (the base as training saw it, the adapter beside it) or "merged" (the folder rule
    merge_adapter wrote: plain weights, quantization off). `merged_from_4bit` says, for a merged folder,
    whether its base had been 4-bit (dequantized before the merge).
    """

    revision: str | None
    snapshot: str | None  # the Hub commit resolved when the run started (None: a folder, a built model, not cached)
    source: dict | None  # lmsweep.modelsource: a folder's fingerprint or a cached Hub commit
    trust_remote_code: bool
    quantization: Quantization
    weights: str
    merged_folder: bool
    merged_from_4bit: bool

    @property
    def revision_to_load(self) -> str | None:
        """The snapshot commit resolved when the run started, else the configured revision."""
        return self.snapshot or self.revision


@dataclass(frozen=True)
class Decoding:
    """One decoding config as a generate job runs it."""

    settings: dict  # generate() arguments, as the study gives them
    defaults: str  # unset fields: "library" (transformers' defaults) or "model" (the folder's generation_config)
    sweep: list | None  # [parameter, value] of a swept config, None for the baseline and named extras


@dataclass(frozen=True)
class Bleu:
    tokenize: str


@dataclass(frozen=True)
class Rouge:
    use_stemmer: bool


@dataclass(frozen=True)
class BertScore:
    model_type: str
    num_layers: int
    batch_size: int
    lang: str
    rescale_with_baseline: bool


@dataclass(frozen=True)
class Statistics:
    confidence: float
    resamples: int
    max_resamples: int
    alpha: float
    seed: int


@dataclass(frozen=True)
class RunLabels:
    """What names one generation and its scores: the path results/<step>/<model>/<variant>/<decoding>/rep<r>."""

    model: str
    variant: str
    decoding: str
    replicate: int
