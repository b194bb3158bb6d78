"""Every intermediate file is checked against what it must contain before a number is made from it.

A predictions file cut short at a line boundary would otherwise be scored as
if complete (a different BLEU, with the report still counting the whole test
split), and one cut mid-line would fail with a bare JSONDecodeError. Each
reader here names the file, what is wrong and the fix.
"""

import json
from pathlib import Path


class IntermediateFileError(RuntimeError):
    """An intermediate file that does not hold what its step must have written."""


def fix(path) -> str:
    return f"rebuild it, and what is made from it, with `snakemake --cores 1 --forcerun {path}`"


def read_jsonl_checked(path) -> list:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise IntermediateFileError(
                    f"{path}, line {number}: not valid JSON ({err.msg}); the file was cut or edited: {fix(path)}"
                ) from None
    return rows


def check_ids(path, ids, expected_ids, what: str, test_path="the test split") -> None:
    """`ids` (one per row of `path`) must be `expected_ids`, each exactly once."""
    expected = list(expected_ids)
    seen, repeated = set(), []
    for i in ids:
        if i in seen:
            repeated.append(i)
        seen.add(i)
    missing = [i for i in expected if i not in seen]
    extra = sorted(seen - set(expected), key=str)
    if missing or extra or repeated:
        problems = []
        if missing:
            problems.append(f"{len(missing)} test id(s) missing ({_some(missing)})")
        if extra:
            problems.append(f"{len(extra)} id(s) not in {test_path} ({_some(extra)})")
        if repeated:
            problems.append(f"{len(repeated)} repeated ({_some(repeated)})")
        raise IntermediateFileError(
            f"{path} holds {len(ids)} {what} for the {len(expected)} records of {test_path}: "
            f"{'; '.join(problems)}. It was cut short, edited, or made from another split: {fix(path)}"
        )


def _some(values, n: int = 5) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


def test_ids(test_path) -> list:
    return [r["id"] for r in read_jsonl_checked(test_path)]


def read_predictions(path, test_path) -> list:
    """The rows of a generate output, checked: valid JSON, one prediction per test record."""
    rows = read_jsonl_checked(path)
    for number, row in enumerate(rows, start=1):
        missing = [k for k in ("id", "prediction", "reference") if k not in row]
        if missing:
            raise IntermediateFileError(f"{path}, row {number}: no {', '.join(missing)}: {fix(path)}")
    check_ids(path, [r["id"] for r in rows], test_ids(test_path), "predictions", test_path)
    return rows


def read_table(path, expected_ids, numeric=(), text=(), test_path="the test split"):
    """A per-example CSV, checked: readable, with its columns, a number in every numeric cell, one row per id.

    Text columns are read as written (an empty prediction stays "", not NaN).
    """
    import pandas as pd

    try:
        table = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise IntermediateFileError(f"{path} cannot be read as CSV ({err}): {fix(path)}") from None
    lacking = [c for c in ("id", *numeric, *text) if c not in table.columns]
    if lacking:
        raise IntermediateFileError(f"{path} has no column {', '.join(lacking)}: {fix(path)}")
    for column in numeric:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            raise IntermediateFileError(
                f"{path}: column {column} has {int(bad.sum())} cell(s) that are not numbers "
                f"(ids {_some(table.id[bad])}): {fix(path)}"
            )
        table[column] = values
    table["id"] = pd.to_numeric(table["id"], errors="coerce")
    check_ids(path, table["id"].tolist(), expected_ids, "rows", test_path)
    return table


def read_json_checked(path, required=()) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IntermediateFileError(f"{path} is not valid JSON ({err}): {fix(path)}") from None
    lacking = [k for k in required if k not in data]
    if lacking:
        raise IntermediateFileError(f"{path} has no {', '.join(lacking)}: {fix(path)}")
    return data
