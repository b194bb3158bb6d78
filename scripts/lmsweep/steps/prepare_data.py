"""Rule prepare_data: load the instruction dataset, validate every record, split it into train and test."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lmsweep import data
from lmsweep.records import Manifest
from lmsweep.settings import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    dataset: Dataset
    seed: int


@dataclass(frozen=True)
class Paths:
    source: list  # the dataset file when it is local (so that an edit reruns the split), else nothing
    train: str
    test: str
    manifest: str


def what_was_read(dataset: Dataset, seed: int) -> dict:
    """The data actually read: a file (with its sha256), a Hub dataset's split, or the synthetic tasks.

    A split and a revision mean something for a Hub dataset only; for a file its content is what counts.
    """
    from lmsweep.io import sha256_file

    if dataset.source == "synthetic":
        return {"kind": "synthetic", "records_drawn": dataset.synthetic_size, "seed": seed}
    if data.is_local(dataset.source):
        return {"kind": "file", "path": dataset.source, "sha256": sha256_file(dataset.source)}
    return {"kind": "hub", "dataset": dataset.source, "split": dataset.split, "revision": dataset.revision}


def run(settings: Settings, paths: Paths, threads: int = 1) -> Manifest:
    from lmsweep.io import sha256_file, write_jsonl
    from lmsweep.reproducibility import library_versions

    d, seed = settings.dataset, settings.seed
    raw = data.load_records(d.source, split=d.split, revision=d.revision, synthetic={"n": d.synthetic_size},
                            seed=seed)
    records, report = data.validate(raw, on_invalid=d.on_invalid, duplicates=d.duplicates)
    train, test = data.split(records, test_size=d.test_size, train_size=d.train_size, seed=seed)
    data.check_test_size(len(test), d.test_size)
    for kind, count in report["dropped"].items():
        log.info(f"dropped {count} record(s): {kind}")
    write_jsonl(paths.train, train)
    write_jsonl(paths.test, test)
    manifest = Manifest(
        source=d.source, read=what_was_read(d, seed), seed=seed, test_size=d.test_size, train_size=d.train_size,
        records_read=report["records_read"], dropped=report["dropped"], duplicates=report["duplicates"],
        valid_records=len(records), n_train=len(train), n_test=len(test),
        train_test_overlap=data.overlap(train, test),
        sha256={"train": sha256_file(paths.train), "test": sha256_file(paths.test)},
        versions=library_versions(("datasets", "pandas")), form=report["form"],
    )
    manifest.save(paths.manifest)
    for line in data.study_warnings(manifest.__dict__):
        log.warning(line)
    log.info(f"{len(train)} train and {len(test)} test records ({report['form']} form) written")
    return manifest
