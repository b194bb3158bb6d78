"""Typed records: what one step writes for another, one writer and one reader each, with a version.

Every record is a frozen dataclass written as JSON (sorted keys, atomically)
with its kind and version beside its fields. `load` checks the file before a
number is made from it: valid JSON, the kind and version this code reads,
every field present and no unknown one; a damaged or foreign file is an
error that names the file and the `--forcerun` that rebuilds it
(lmsweep.checks). The per-example tables beside some records are CSV files,
checked column by column where they are read (lmsweep.checks.read_table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from lmsweep import checks
from lmsweep.io import write_json
from lmsweep.settings import SettingsError, from_mapping


class Record:
    """The writer and reader every record shares; KIND names the file's kind, VERSION its layout."""

    KIND = ""
    VERSION = 1

    def save(self, path) -> None:
        write_json(path, {"kind": self.KIND, "version": self.VERSION, **dataclasses.asdict(self)})

    @classmethod
    def load(cls, path, rebuild=None):
        """The record in `path`, checked; `rebuild` names what --forcerun rebuilds (default: the file)."""
        data = checks.read_json_checked(path, ["kind", "version"], rebuild=rebuild)
        if data["kind"] != cls.KIND or data["version"] != cls.VERSION:
            raise checks.IntermediateFileError(
                f"{path} is a {data['kind']!r} record of version {data['version']}, not the {cls.KIND!r} of version "
                f"{cls.VERSION} this step reads (made by another lmsweep?): {checks.fix(rebuild or path)}"
            )
        try:
            return from_mapping(cls, {k: v for k, v in data.items() if k not in ("kind", "version")}, str(path))
        except (SettingsError, TypeError) as err:
            raise checks.IntermediateFileError(f"{err}: {checks.fix(rebuild or path)}") from None


@dataclass(frozen=True)
class Manifest(Record):
    """prepare_data's manifest.json: what was read, dropped and split, and the split's content hashes."""

    KIND = "manifest"
    VERSION = 2  # 2: form
    source: str
    read: dict
    seed: int
    test_size: float
    train_size: float | None
    records_read: int
    dropped: dict
    duplicates: int
    valid_records: int
    n_train: int
    n_test: int
    train_test_overlap: int
    sha256: dict
    versions: dict
    form: str  # alpaca, messages or sharegpt (lmsweep.data)


@dataclass(frozen=True)
class TrainingInfo(Record):
    """finetune's training_info.json, beside the adapter."""

    KIND = "training_info"
    VERSION = 2  # 2: adaptation, validation, cost
    model: str
    adaptation: str | None  # the adaptation config (lmsweep.adaptation); None: the baseline adapter
    resumed_from: str | None
    global_step: int
    train_loss: float | None
    processes: int
    effective_batch_size: int
    lengths: dict
    settings: dict
    identity: dict
    target_modules: list
    versions: dict
    ranks: dict = field(default_factory=dict)  # several training processes: backend, agreement, checksums
    validation: dict = field(default_factory=dict)  # lmsweep.trainlog.validation_summary
    cost: dict = field(default_factory=dict)  # lmsweep.trainlog.CostMeter.record


@dataclass(frozen=True)
class MergeInfo(Record):
    """merge_adapter's merge_info.json, in the merged model's folder."""

    KIND = "merge_info"
    base_model: str
    adapter: str
    model_source: dict | None
    dequantized_from_4bit: bool
    dtype: str
    seconds: float
    versions: dict


@dataclass(frozen=True)
class GenerationInfo(Record):
    """generate's <run>.info.json: the effective generation config, what it overrode, counts and timings."""

    KIND = "generation_info"
    VERSION = 2  # 2: prompt_format
    model: str
    variant: str
    decoding: str
    replicate: int
    settings: dict
    generation_config: dict
    sweep: list | None
    seed: int
    base_model: str
    adapter: str | None
    inference: str
    n_examples: int
    overridden_model_defaults: dict
    hit_max_new_tokens: int
    prompts_cut: int
    batch_sizes: list
    sampling: str | None
    new_tokens: int
    seconds: dict
    new_tokens_per_second: float
    device: str
    versions: dict
    prompt_format: str


@dataclass(frozen=True)
class ScoreSummary(Record):
    """score's rep<r>.json: the three metrics with their signatures; its per-example CSV lies beside it."""

    KIND = "score_summary"
    model: str
    variant: str
    decoding: str
    replicate: int
    sweep: list | None
    settings: dict
    generation_config: dict
    inference: str
    n_examples: int
    empty_predictions: int
    hit_max_new_tokens: int
    seed: int
    metrics: dict
    bertscore_settings: dict
    versions: dict


@dataclass(frozen=True)
class PerplexitySummary(Record):
    """perplexity's <variant>.json: the three corpus perplexities; the per-example NLL lies beside it."""

    KIND = "perplexity_summary"
    VERSION = 2  # 2: prompt_format
    model: str
    variant: str
    perplexity: float
    bits_per_byte: float
    word_perplexity: float
    answer_tokens: int
    answer_bytes: int
    answer_words: int
    examples_cut: int
    answers_cut: int
    bytes_cut: int
    n_examples: int
    signatures: dict
    base_model: str
    inference: str
    model_source: dict | None
    adapter: str | None
    seed: int
    versions: dict
    prompt_format: str


@dataclass(frozen=True)
class CheckedScores(Record):
    """check_scores' checked.json: every score and perplexity file the tables are made from, by sha256."""

    KIND = "checked_scores"
    test: str
    runs: int
    replicates: int
    perplexities: int
    sha256: dict


def per_example_path(summary_path) -> Path:
    """The per-example CSV beside a score or perplexity summary."""
    return Path(str(summary_path).removesuffix(".json") + ".per_example.csv")
