"""Load, validate and split the instruction dataset (rule prepare_data).

    python scripts/prepare_data.py --source data/alpaca.jsonl --test-size 200 --seed 42 \
        --out-dir results/prepare_data
    python scripts/prepare_data.py --source tatsu-lab/alpaca --test-size 0.05 --out-dir /tmp/split
"""

import argparse
from pathlib import Path

from lmsweep import data
from lmsweep.files import library_versions, sha256_file, write_json, write_jsonl


def run(
    source: str,
    train_path: str,
    test_path: str,
    manifest_path: str,
    seed: int,
    test_size: float,
    train_size: float | None = None,
    split: str = "train",
    revision: str | None = None,
    synthetic_size: int = 600,
    on_invalid: str = "error",
    duplicates: str = "drop",
) -> dict:
    raw = data.load_records(source, split=split, revision=revision, synthetic={"n": synthetic_size}, seed=seed)
    records, report = data.validate(raw, on_invalid=on_invalid, duplicates=duplicates)
    train, test = data.split(records, test_size=test_size, train_size=train_size, seed=seed)
    data.check_test_size(len(test), test_size)
    for kind, count in report["dropped"].items():
        print(f"dropped {count} record(s): {kind}")
    write_jsonl(train_path, train)
    write_jsonl(test_path, test)
    manifest = {
        "source": source,
        "read": what_was_read(source, split, revision, synthetic_size, seed),
        "seed": seed,
        "test_size": test_size,
        "train_size": train_size,
        **report,
        "valid_records": len(records),
        "n_train": len(train),
        "n_test": len(test),
        "train_test_overlap": data.overlap(train, test),
        "sha256": {"train": sha256_file(train_path), "test": sha256_file(test_path)},
        "versions": library_versions(("datasets", "pandas")),
    }
    write_json(manifest_path, manifest)
    for line in data.study_warnings(manifest):
        print(f"warning: {line}")
    print(f"{len(train)} train and {len(test)} test records written")
    return manifest


def what_was_read(source: str, split: str, revision, synthetic_size: int, seed: int) -> dict:
    """The data actually read: a file (with its sha256), a Hub dataset's split, or the synthetic tasks.

    A split and a revision mean something for a Hub dataset only; for a file its content is what counts.
    """
    if source == "synthetic":
        return {"kind": "synthetic", "records_drawn": synthetic_size, "seed": seed}
    if data.is_local(source):
        return {"kind": "file", "path": source, "sha256": sha256_file(source)}
    return {"kind": "hub", "dataset": source, "split": split, "revision": revision}


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="Hub dataset id, local .json/.jsonl/.parquet, or synthetic")
    parser.add_argument("--out-dir", required=True, type=Path, help="folder for train.jsonl, test.jsonl, manifest.json")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-size", type=_number, default=0.1, help="count, or fraction below 1")
    parser.add_argument("--train-size", type=_number, default=None, help="count or fraction; default: the rest")
    parser.add_argument("--split", default="train", help="split of a Hub dataset")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--synthetic-size", type=int, default=600)
    parser.add_argument("--on-invalid", choices=["error", "drop"], default="error")
    parser.add_argument("--duplicates", choices=["drop", "keep", "error"], default="drop")
    args = parser.parse_args(argv)
    try:
        run(
            args.source, args.out_dir / "train.jsonl", args.out_dir / "test.jsonl", args.out_dir / "manifest.json",
            seed=args.seed, test_size=args.test_size, train_size=args.train_size, split=args.split,
            revision=args.revision, synthetic_size=args.synthetic_size, on_invalid=args.on_invalid,
            duplicates=args.duplicates,
        )
    except data.DatasetError as err:
        parser.error(str(err))


if "snakemake" in globals():
    from lmsweep.files import log_to
    from lmsweep.warm import delegate

    delegate()

    log_to(snakemake.log[0])
    run(
        train_path=snakemake.output.train,
        test_path=snakemake.output.test,
        manifest_path=snakemake.output.manifest,
        **{k: v for k, v in snakemake.params.items() if k != "code"},
    )
elif __name__ == "__main__":
    main()
