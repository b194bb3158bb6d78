"""Load an instruction dataset, validate its records and split it.

Three forms, one per dataset:

- Alpaca: the string fields `instruction`, `input` (may be empty) and
  `output` (may not);
- messages: a `messages` list of {"role", "content"} turns (OpenAI roles:
  system, user, assistant);
- ShareGPT: a `conversations` list of {"from", "value"} turns (system,
  human, gpt; TRL's maybe_convert_to_chatml names).

A conversation's last turn must be the assistant's: it is the reference
answer (`output`), and the turns before it (`messages`, at least one, the
last a user turn, a system turn only first) the prompt. Records keep their
position in the source as `id`, so a prediction can always be traced back to
the line it came from.
"""

import json
import random
from collections import Counter
from pathlib import Path

from lmsweep.sources import DATA_SUFFIXES, is_local

FIELDS = ("instruction", "input", "output")
FORMS = ("alpaca", "messages", "sharegpt")
# ShareGPT's speaker names, as TRL converts them to roles (trl.data_utils.maybe_convert_to_chatml).
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
ROLES = ("system", "user", "assistant")
# Fewer test records than this are refused: no paired test on them could reach p < 0.01 (the exact sign-flip
# test's smallest p is 2/2**n), and a bootstrap interval would rest on a handful of values.
MIN_TEST_RECORDS = 8
# Below this the run warns that intervals are wide and only large effects can be significant.
SMALL_TEST_RECORDS = 30


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message says what to fix."""


def local_source_problem(source: str) -> str | None:
    """Why a local `source` that exists cannot be read (a folder, another file type), or None."""
    path = Path(source).expanduser()
    needed = "give a .json, .jsonl or .parquet file of Alpaca, messages or ShareGPT records"
    if path.is_dir():
        return f"{source!r} is a directory; {needed}"
    if path.exists() and path.suffix.lower() not in DATA_SUFFIXES:
        return f"{source!r} is a {path.suffix or 'suffix-less'} file; {needed}"
    return None


def load_records(source: str, split: str = "train", revision=None, synthetic=None, seed: int = 0):
    """Records of `source`: "synthetic", a local .json/.jsonl/.parquet file, or a Hub dataset id."""
    if source == "synthetic":
        from lmsweep.demo_data import make_tasks

        return make_tasks(n=synthetic["n"], seed=seed)
    if is_local(source):
        return _load_local(Path(source).expanduser())
    import datasets

    return list(datasets.load_dataset(source, split=split, revision=revision))


def _load_local(path: Path):
    if not path.exists():
        raise DatasetError(f"dataset file {path} does not exist (config key dataset.source)")
    problem = local_source_problem(str(path))
    if problem:
        raise DatasetError(f"dataset.source: {problem}")
    if path.stat().st_size == 0:
        raise DatasetError(f"dataset file {path} is empty")
    if path.suffix == ".parquet":
        return _read_parquet(path)
    text = _read_utf8(path)
    if not text.strip():
        raise DatasetError(f"dataset file {path} is empty")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(data, list):
            raise DatasetError(f"{path} must hold a JSON array of records, found {type(data).__name__}")
        return data
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
    return records


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DatasetError(
            f"{path}, line {line} (byte offset {err.start}): byte 0x{raw[err.start]:02x} is not UTF-8; "
            "re-encode the file as UTF-8 (e.g. iconv -f cp1252 -t utf-8, naming its real encoding)"
        ) from None


def _read_parquet(path: Path):
    import pandas as pd

    try:
        return pd.read_parquet(path).to_dict(orient="records")
    except ImportError:
        raise
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError and more for a bad file
        raise DatasetError(
            f"{path} could not be read as Parquet ({type(err).__name__}: {err}); "
            "check that it is a complete Parquet file, or give a .json or .jsonl file"
        ) from None


def record_form(record) -> str:
    """alpaca, messages or sharegpt: which form a record is in (by its fields)."""
    if isinstance(record, dict) and "messages" in record:
        return "messages"
    if isinstance(record, dict) and "conversations" in record:
        return "sharegpt"
    return "alpaca"


def turns_of(record, form: str):
    """(turns as {"role", "content"}, problem): a conversation record's turns, or why they cannot be read."""
    field, role_key, text_key = ("messages", "role", "content") if form == "messages" else \
        ("conversations", "from", "value")
    turns = record[field]
    if hasattr(turns, "tolist"):  # a Parquet file's list column reaches us as a numpy array
        turns = turns.tolist()
    if not isinstance(turns, list) or not turns:
        return None, f"field {field} is {'an empty list' if turns == [] else type(turns).__name__}, not a list of turns"
    out = []
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            return None, f"{field} turn {n} is not an object with {role_key!r} and {text_key!r}"
        role, text = turn[role_key], turn[text_key]
        role = SHAREGPT_ROLES.get(role) if form == "sharegpt" else (role if role in ROLES else None)
        if role is None:
            known = ", ".join(SHAREGPT_ROLES if form == "sharegpt" else ROLES)
            return None, f"{field} turn {n} has the unknown {role_key} {turn[role_key]!r} (known: {known})"
        if not isinstance(text, str):
            return None, f"{field} turn {n} ({role}) has a {type(text).__name__} {text_key}, not a string"
        if not text.strip():
            return None, f"{field} turn {n} ({role}) is empty"
        out.append({"role": role, "content": text})
    return out, None


def conversation_problem(turns, field: str) -> str | None:
    """Why turns cannot make a prompt and its reference answer, or None."""
    roles = [t["role"] for t in turns]
    if roles[-1] != "assistant":
        return f"{field} does not end with an assistant turn (the reference answer): it ends with {roles[-1]}"
    if len(roles) < 2 or roles[-2] != "user":
        return f"{field} has no user turn right before its last assistant turn (the prompt the answer follows)"
    if "system" in roles[1:]:
        return f"{field} has a system turn after its first turn"
    return None


def normalize(record, form: str):
    """(the record as lmsweep keeps it, problem): Alpaca fields, or `messages` (the prompt turns) and
    `output` (the last assistant turn)."""
    if form == "alpaca":
        problem = record_problem(record)
        return (None, problem) if problem else ({f: record[f] for f in FIELDS}, None)
    turns, problem = turns_of(record, form)
    problem = problem or conversation_problem(turns, "messages" if form == "messages" else "conversations")
    if problem:
        return None, problem
    return {"messages": turns[:-1], "output": turns[-1]["content"]}, None


def prompt_key(record) -> tuple:
    """What makes two records the same prompt (duplicates, train/test overlap): instruction and input, or
    the prompt turns, stripped."""
    if "messages" in record:
        return tuple((t["role"], t["content"].strip()) for t in record["messages"])
    return (record["instruction"].strip(), record["input"].strip())


def record_problem(record) -> str | None:
    """Why an Alpaca `record` cannot be used, or None."""
    if not isinstance(record, dict):
        return f"is a {type(record).__name__}, not an object"
    missing = [f for f in FIELDS if f not in record]
    if missing:
        return f"has no field {', '.join(missing)}"
    for field in FIELDS:
        if not isinstance(record[field], str):
            return f"field {field} is {type(record[field]).__name__}, not a string"
    if not record["instruction"].strip():
        return "has an empty instruction"
    if not record["output"].strip():
        return "has an empty output"
    return None


def validate(records, on_invalid: str = "error", duplicates: str = "drop"):
    """Keep usable records, each with its 1-based source position as `id`.

    on_invalid: "error" stops at the first bad record, "drop" counts and drops it.
    duplicates (same instruction and input, or the same prompt turns): "drop" keeps the first, "keep", or
    "error". Every record must be in the first record's form (alpaca, messages or sharegpt).
    Returns (records, report) where report counts what was dropped and why, and names the form.
    """
    if not records:
        raise DatasetError("the dataset holds no records")
    form = record_form(records[0])
    kept, dropped, seen, repeats = [], Counter(), {}, 0
    for number, record in enumerate(records, start=1):
        if record_form(record) != form:
            raise DatasetError(f"record {number} is in {record_form(record)} form, but record 1 is in {form} form; "
                               "give every record in one form")
        normal, problem = normalize(record, form)
        if problem:
            if on_invalid == "error":
                raise DatasetError(
                    f"record {number} {problem}; fix the data or set dataset.on_invalid: drop"
                )
            dropped[problem] += 1
            continue
        key = prompt_key(normal)
        if key in seen:
            repeats += 1
            if duplicates == "error":
                raise DatasetError(
                    f"record {number} repeats the {'prompt turns' if form != 'alpaca' else 'instruction and input'} "
                    f"of record {seen[key]}; set dataset.duplicates: drop (or keep)"
                )
            if duplicates == "drop":
                dropped["duplicate"] += 1
                continue
        else:
            seen[key] = number
        kept.append({"id": number, **normal})
    if not kept:
        raise DatasetError(f"no usable record is left after dropping {dict(dropped)}")
    return kept, {"records_read": len(records), "dropped": dict(dropped), "duplicates": repeats, "form": form}


def _size(value, total: int, key: str) -> int:
    if isinstance(value, float) and value < 1:
        return int(round(value * total))
    return int(value)


def split(records, test_size, train_size=None, seed: int = 0):
    """Shuffle with `seed`, then take the test set first and the train set after it.

    Sizes are counts (int) or fractions of the valid records (float below 1);
    train_size None takes every record not in the test set.
    """
    total = len(records)
    n_test = _size(test_size, total, "test_size")
    n_train = total - n_test if train_size is None else _size(train_size, total, "train_size")
    if n_test < 1 or n_train < 1 or n_test + n_train > total:
        raise DatasetError(
            f"dataset.test_size={test_size} and dataset.train_size={train_size} ask for "
            f"{n_test} test and {n_train} train records, but {total} valid records exist; "
            "lower the sizes"
        )
    order = list(range(total))
    random.Random(seed).shuffle(order)
    test = sorted((records[i] for i in order[:n_test]), key=lambda r: r["id"])
    train = sorted((records[i] for i in order[n_test : n_test + n_train]), key=lambda r: r["id"])
    return train, test


def check_test_size(n_test: int, test_size) -> None:
    """Refuse a test split too small for any interval or test to mean something."""
    if n_test < MIN_TEST_RECORDS:
        raise DatasetError(
            f"dataset.test_size={test_size} gives {n_test} test records; at least {MIN_TEST_RECORDS} are needed "
            f"(with fewer, no paired test could reach p < 0.01 and a bootstrap interval rests on a handful of "
            f"values): raise dataset.test_size"
        )


def study_warnings(manifest: dict) -> list:
    """What a study's split makes doubtful, said in the log and in the report."""
    out = []  # the manifest, or a report's record of it
    if manifest.get("train_test_overlap"):
        out.append(
            f"{manifest['train_test_overlap']} of {manifest['n_test']} test prompts (instruction and input) also "
            "stand in the training split (dataset.duplicates: keep): the model saw their answers in training, so "
            "its test scores overstate what it does on new prompts"
        )
    if manifest["n_test"] < SMALL_TEST_RECORDS:
        out.append(
            f"the test split has {manifest['n_test']} records: intervals are wide, and only large, consistent "
            f"differences can be significant (at least {SMALL_TEST_RECORDS} are advisable)"
        )
    return out


def overlap(train, test) -> int:
    """Test records whose prompt (instruction and input, or prompt turns) also stands in the train set."""
    seen = {prompt_key(r) for r in train}
    return sum(prompt_key(r) in seen for r in test)
