"""Every intermediate file is checked against what it must contain before a number is made from it.

A predictions file cut short at a line boundary would otherwise be scored as
if complete (a different BLEU, with the report still counting the whole test
split), and one cut mid-line would fail with a bare JSONDecodeError. A file
is trusted for nothing it says about itself that can be known otherwise: the
references come from the test split, the labels of a run (model, variant,
decoding, replicate) from the file's path, and every per-example number must
lie in its metric's range. Each reader here names the file, what is wrong and
the fix.
"""

import json
import math
import re
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


def test_records(test_path) -> dict:
    """{id: record} of the test split."""
    return {r["id"]: r for r in read_jsonl_checked(test_path)}


def read_predictions(path, test_path, labels: dict | None = None) -> list:
    """The rows of a generate output, checked: valid JSON, one prediction per test record, each with the
    test split's reference for its id, and (given `labels`, from the path) the run's own labels."""
    rows = read_jsonl_checked(path)
    for number, row in enumerate(rows, start=1):
        missing = [k for k in ("id", "prediction", "reference") if k not in row]
        if missing:
            raise IntermediateFileError(f"{path}, row {number}: no {', '.join(missing)}: {fix(path)}")
        if not isinstance(row["prediction"], str):
            raise IntermediateFileError(f"{path}, row {number}: the prediction is a {type(row['prediction']).__name__}"
                                        f", not text: {fix(path)}")
    records = test_records(test_path)
    check_ids(path, [r["id"] for r in rows], list(records), "predictions", test_path)
    for number, row in enumerate(rows, start=1):
        if row["reference"] != records[row["id"]]["output"]:
            raise IntermediateFileError(
                f"{path}, row {number} (test id {row['id']}): its reference is not the test split's answer for "
                f"that id in {test_path}; the file was edited or made from another split: {fix(path)}"
            )
        for key, value in (labels or {}).items():
            if str(row.get(key)) != str(value):
                raise IntermediateFileError(
                    f"{path}, row {number}: {key} is {row.get(key)!r}, but the file's path says {value!r}; the "
                    f"file was edited or moved: {fix(path)}"
                )
    return rows


# Where each run's labels stand in its path: results/score/<model>/<variant>/<decoding>/rep<r>.json and
# results/perplexity/<model>/<variant>.json (the rules' output patterns).
_RUN_PATH = re.compile(r"(?:^|/)(?P<model>[^/]+)/(?P<variant>[^/]+)/(?P<decoding>[^/]+)/rep(?P<replicate>\d+)\.json$")
_PERPLEXITY_PATH = re.compile(r"(?:^|/)(?P<model>[^/]+)/(?P<variant>[^/]+)\.json$")


def labels_of(path, kind: str = "score") -> dict:
    """A summary's labels, read from its path (never from inside it)."""
    match = (_RUN_PATH if kind == "score" else _PERPLEXITY_PATH).search(Path(path).as_posix())
    if not match:
        layout = "<model>/<variant>/<decoding>/rep<r>.json" if kind == "score" else "<model>/<variant>.json"
        raise IntermediateFileError(f"{path}: not a {kind} summary's path (…/{layout})")
    labels = match.groupdict()
    if "replicate" in labels:
        labels["replicate"] = int(labels["replicate"])
    return labels


def check_labels(path, summary: dict, labels: dict) -> None:
    """The labels a summary holds must be those of its path."""
    for key, value in labels.items():
        if key in summary and summary[key] != value:
            raise IntermediateFileError(
                f"{path} says {key} {summary[key]!r}, but its path says {value!r}; the file was edited or moved: "
                f"{fix(path)}"
            )


def distinct(paths, what: str) -> list:
    """`paths`, refused when one of them is listed twice (it would count as two replicates)."""
    seen = {}
    for path in paths:
        key = str(Path(path).resolve())
        if key in seen:
            raise IntermediateFileError(f"{path} is listed twice among the {what}; each file counts once")
        seen[key] = path
    return list(paths)


def read_table(path, expected_ids, numeric=(), text=(), test_path="the test split", ranges=None):
    """A per-example CSV, checked: readable, with its columns, a finite number in every numeric cell (within
    `ranges[column]` = (low, high) where given), one row per id.

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
        bad = values.isna() | ~values.map(lambda v: math.isfinite(v) if v == v else False)
        if bad.any():
            raise IntermediateFileError(
                f"{path}: column {column} has {int(bad.sum())} cell(s) that are not finite numbers "
                f"(ids {_some(table.id[bad])}): {fix(path)}"
            )
        low, high = (ranges or {}).get(column, (-math.inf, math.inf))
        # float rounding (sentence BLEU 100.00000000000004, a float32 cosine of 1.0000001) is not a damage
        slack = [1e-6 * max(1.0, abs(b)) if math.isfinite(b) else 0.0 for b in (low, high)]
        outside = (values < low - slack[0]) | (values > high + slack[1])
        if outside.any():
            raise IntermediateFileError(
                f"{path}: column {column} has {int(outside.sum())} value(s) outside its range [{low}, {high}] "
                f"(ids {_some(table.id[outside])}, e.g. {values[outside].iloc[0]}); no metric gives such a value: "
                f"{fix(path)}"
            )
        table[column] = values
    table["id"] = pd.to_numeric(table["id"], errors="coerce")
    check_ids(path, table["id"].tolist(), expected_ids, "rows", test_path)
    return table


def read_json_checked(path, required=(), rebuild=None) -> dict:
    """A JSON object with the keys `required`; `rebuild` names what --forcerun rebuilds (default: the file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IntermediateFileError(f"{path} is not valid JSON ({err}): {fix(rebuild or path)}") from None
    if not isinstance(data, dict):
        raise IntermediateFileError(f"{path} holds a JSON {type(data).__name__}, not an object: {fix(rebuild or path)}")
    lacking = [k for k in required if k not in data]
    if lacking:
        raise IntermediateFileError(f"{path} has no {', '.join(lacking)}: {fix(rebuild or path)}")
    return data


def read_csv_checked(path, columns=()):
    """A table a step wrote (scores.csv, comparisons.csv), checked: readable, with its columns."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise IntermediateFileError(f"{path} cannot be read as CSV ({err}): {fix(path)}") from None
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise IntermediateFileError(f"{path} has no column {', '.join(lacking)}: {fix(path)}")
    return table
