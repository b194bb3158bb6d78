"""Loading, validating and splitting Alpaca-format data; the demo's own task set."""

import json
import re
from collections import Counter

import pandas as pd
import pytest

from lmsweep import data
from lmsweep.data import DatasetError
from lmsweep.demo_data import CAPITALS, NUMBER_WORDS, make_tasks

RECORDS = [
    {"instruction": "Add the two numbers.", "input": "1 and 2", "output": "3"},
    {"instruction": "Name a colour.", "input": "", "output": "red"},
    {"instruction": "Reverse the words.", "input": "a b c", "output": "c b a"},
]


def numbered(n):
    return [{"id": i, "instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(1, n + 1)]


# --- load_records --------------------------------------------------------------------------------------------


def test_load_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS))
    assert data.load_records(str(path)) == RECORDS


def test_load_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS[:2]) + "\n\n" + json.dumps(RECORDS[2]) + "\n")
    assert data.load_records(str(path)) == RECORDS


def test_load_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(RECORDS).to_parquet(path)
    assert data.load_records(str(path)) == RECORDS


def test_synthetic_source_is_the_demo_task_set():
    assert data.load_records("synthetic", synthetic={"n": 20}, seed=5) == make_tasks(n=20, seed=5)


def test_invalid_jsonl_line_names_its_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    # A blank line before the bad one: the number is the line in the file, not the record count.
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + '{"instruction": "x", ' + "\n" + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(DatasetError, match=r"line 3\b.*not valid JSON") as err:
        data.load_records(str(path))
    assert str(path) in str(err.value)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"instruction": "x"')
    with pytest.raises(DatasetError, match="not valid JSON"):
        data.load_records(str(path))


def test_json_that_is_not_an_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS[0]))
    with pytest.raises(DatasetError, match="JSON array.*found dict"):
        data.load_records(str(path))


@pytest.mark.parametrize("name, text", [("d.json", ""), ("d.jsonl", ""), ("d.jsonl", "\n  \n")])
def test_empty_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError, match="is empty"):
        data.load_records(str(path))


def test_empty_parquet_file(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"")
    with pytest.raises(DatasetError):
        data.load_records(str(path))


@pytest.mark.parametrize("name", ["missing.json", "missing.jsonl", "missing.parquet"])
def test_missing_file(tmp_path, name):
    with pytest.raises(DatasetError, match="does not exist.*dataset.source"):
        data.load_records(str(tmp_path / name))


def test_is_local(tmp_path, monkeypatch):
    assert data.is_local("data/alpaca.jsonl")
    assert data.is_local("./alpaca")
    assert data.is_local("/abs/alpaca")
    assert data.is_local("~/alpaca.json")
    assert not data.is_local("tatsu-lab/alpaca")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tatsu-lab" / "alpaca").mkdir(parents=True)
    assert data.is_local("tatsu-lab/alpaca")  # a folder here: datasets would not go to the Hub either


def test_a_folder_is_not_a_dataset_file(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset.source: '.*' is a directory; give a .json, .jsonl or .parquet"):
        data.load_records(str(tmp_path))


def test_a_file_of_another_type_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("instruction,input,output\n")
    with pytest.raises(DatasetError, match=r"is a .csv file; give a .json, .jsonl or .parquet file"):
        data.load_records(str(path))


def test_home_folder_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d.json").write_text(json.dumps(RECORDS))
    assert data.load_records("~/d.json") == RECORDS


def latin1_jsonl(tmp_path, name="d.jsonl"):
    """Two good lines, then one with 'é' in Latin-1 (byte 0xe9); returns the path and the byte's offset."""
    good = "".join(json.dumps(r) + "\n" for r in RECORDS[:2]).encode()
    bad = json.dumps({"instruction": "Say café.", "input": "", "output": "café"}, ensure_ascii=False)
    path = tmp_path / name
    path.write_bytes(good + bad.encode("latin-1") + b"\n")
    return path, len(good) + bad.index("é")


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_a_byte_that_is_not_utf8_names_the_file_line_and_offset(tmp_path, name):
    path, offset = latin1_jsonl(tmp_path, name)
    with pytest.raises(DatasetError) as err:
        data.load_records(str(path))
    assert str(err.value).startswith(f"{path}, line 3 (byte offset {offset}): byte 0xe9 is not UTF-8; "
                                     "re-encode the file as UTF-8")


def test_prepare_data_stops_on_a_byte_that_is_not_utf8(tmp_path):
    """The step run by hand, as a person runs it: the error, not a UnicodeDecodeError traceback."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    path, offset = latin1_jsonl(tmp_path)
    repo = Path(data.__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "demo" / "config.yaml").read_text())
    config["dataset"].update(source=str(path), test_size=8)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "prepare_data.py"), "--directory", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"{path}, line 3 (byte offset {offset}): byte 0xe9 is not UTF-8" in proc.stderr
    assert "UnicodeDecodeError" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results" / "prepare_data" / "train.jsonl").exists()


def test_a_parquet_file_that_cannot_be_read_is_named(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(RECORDS).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])  # cut short: the footer is gone
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))} could not be read as Parquet \(\w+: "):
        data.load_records(str(path))


# --- validate ------------------------------------------------------------------------------------------------


def test_valid_records_get_their_1_based_position_as_id():
    kept, report = data.validate(RECORDS)
    assert [r["id"] for r in kept] == [1, 2, 3]
    assert [{k: r[k] for k in data.FIELDS} for r in kept] == RECORDS
    assert report["records_read"] == 3 and report["dropped"] == {}


def test_validate_keeps_only_the_alpaca_fields():
    kept, _ = data.validate([{**RECORDS[0], "text": "extra", "id": 99}])
    assert kept == [{"id": 1, **RECORDS[0]}]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"instruction": "x", "output": "y"}, "has no field input"),
        ({"instruction": "x", "input": "", "output": 7}, "field output is int, not a string"),
        ({"instruction": "x", "input": None, "output": "y"}, "field input is NoneType, not a string"),
        ({"instruction": "x", "input": "", "output": "  "}, "has an empty output"),
        ({"instruction": "", "input": "", "output": "y"}, "has an empty instruction"),
        (["x", "", "y"], "is a list, not an object"),
    ],
)
def test_invalid_record_stops_with_its_number(bad, problem):
    records = [RECORDS[0], RECORDS[1], bad, RECORDS[2]]
    with pytest.raises(DatasetError, match=rf"^record 3 {re.escape(problem)}; .*on_invalid: drop"):
        data.validate(records, on_invalid="error")


def test_invalid_records_are_counted_and_dropped():
    records = [
        RECORDS[0],
        {"instruction": "x", "output": "y"},
        {"instruction": "x", "input": "", "output": ""},
        RECORDS[1],
        {"instruction": "z", "input": "", "output": ""},
    ]
    kept, report = data.validate(records, on_invalid="drop")
    assert [r["id"] for r in kept] == [1, 4]  # positions in the source, not in the kept list
    assert report["records_read"] == 5
    assert report["dropped"] == {"has no field input": 1, "has an empty output": 2}


def test_nothing_valid_left_is_an_error():
    with pytest.raises(DatasetError, match="no usable record"):
        data.validate([{"instruction": "x"}], on_invalid="drop")


def test_no_records_is_an_error():
    with pytest.raises(DatasetError, match="no records"):
        data.validate([])


DUPLICATED = [
    {"instruction": "Add.", "input": "1 and 2", "output": "3"},
    {"instruction": "Other.", "input": "", "output": "x"},
    {"instruction": " Add. ", "input": "1 and 2 ", "output": "three"},  # same after stripping
]


def test_duplicates_drop_keeps_the_first():
    kept, report = data.validate(DUPLICATED, duplicates="drop")
    assert [(r["id"], r["output"]) for r in kept] == [(1, "3"), (2, "x")]
    assert report["dropped"] == {"duplicate": 1}
    assert report["duplicates"] == 1


def test_duplicates_keep():
    kept, report = data.validate(DUPLICATED, duplicates="keep")
    assert [r["id"] for r in kept] == [1, 2, 3]
    assert report["dropped"] == {}
    assert report["duplicates"] == 1  # counted, though kept


def test_duplicates_error_names_both_records():
    with pytest.raises(DatasetError, match=r"record 3 repeats .* of record 1"):
        data.validate(DUPLICATED, duplicates="error")


# --- split ---------------------------------------------------------------------------------------------------


def ids(records):
    return [r["id"] for r in records]


def test_split_is_deterministic_for_a_seed():
    records = numbered(50)
    assert data.split(records, 10, seed=3) == data.split(records, 10, seed=3)


def test_split_differs_for_another_seed():
    records = numbered(50)
    assert ids(data.split(records, 10, seed=3)[1]) != ids(data.split(records, 10, seed=4)[1])


def test_split_counts_and_rest():
    train, test = data.split(numbered(50), 10, seed=0)
    assert len(test) == 10 and len(train) == 40
    assert sorted(ids(train) + ids(test)) == list(range(1, 51))  # every record in exactly one set
    assert ids(test) == sorted(ids(test)) and ids(train) == sorted(ids(train))  # in source order


def test_split_fractions():
    train, test = data.split(numbered(40), 0.25, train_size=0.5, seed=0)
    assert (len(train), len(test)) == (20, 10)
    assert not set(ids(train)) & set(ids(test))


def test_split_explicit_train_count_leaves_the_rest_unused():
    train, test = data.split(numbered(40), 5, train_size=12, seed=1)
    assert (len(train), len(test)) == (12, 5)
    assert not set(ids(train)) & set(ids(test))


def test_a_whole_float_of_one_or_more_is_a_count():
    train, test = data.split(numbered(40), 5.0, train_size=10.0, seed=2)
    assert (len(train), len(test)) == (10, 5)


def test_test_set_does_not_depend_on_train_size():
    records = numbered(40)
    assert data.split(records, 5, train_size=10, seed=2)[1] == data.split(records, 5, seed=2)[1]


@pytest.mark.parametrize(
    "test_size, train_size",
    [(10, 1), (0, None), (11, None), (0.01, None), (5, 6), (11.0, None), (0.5, 0.6)],
)
def test_sizes_that_do_not_fit(test_size, train_size):
    with pytest.raises(DatasetError, match="10 valid records exist"):
        data.split(numbered(10), test_size, train_size=train_size, seed=0)


def test_overlap_counts_test_records_seen_in_train():
    train = [{"instruction": "a", "input": ""}, {"instruction": "b", "input": "x"}]
    test = [
        {"instruction": "a", "input": " "},  # same as train[0] after stripping
        {"instruction": "b", "input": "y"},
        {"instruction": "b", "input": "x"},
        {"instruction": "c", "input": ""},
    ]
    assert data.overlap(train, test) == 2
    assert data.overlap(train, []) == 0


# --- the demo task set -----------------------------------------------------------------------------------------


def test_make_tasks_is_deterministic_for_a_seed():
    assert make_tasks(n=50, seed=1) == make_tasks(n=50, seed=1)
    assert make_tasks(n=50, seed=1) != make_tasks(n=50, seed=2)


def check_answer(record) -> str:
    """The kind of task, after checking its answer follows from its prompt."""
    instruction, given, output = record["instruction"], record["input"], record["output"]
    words = given.split()
    if instruction == "Add the two numbers.":
        a, b = (int(x) for x in given.split(" and "))
        assert output == str(a + b)
        return "add"
    if instruction == "Reverse the order of the words.":
        assert output.split() == words[::-1]
        return "reverse"
    if instruction == "Sort the words in alphabetical order.":
        assert output.split() == sorted(words)
        return "sort"
    if instruction.startswith("How many words"):
        assert output == f"There are {NUMBER_WORDS[len(words)]} words."
        return "count"
    if instruction == "Write the word in capital letters.":
        assert output == given.upper() and len(words) == 1
        return "upper"
    country = re.fullmatch(r"What is the capital of (\w+)\?", instruction).group(1)
    assert given == "" and output == f"The capital of {country} is {CAPITALS[country]}."
    return "capital"


def test_demo_answers_follow_from_their_prompts():
    records = make_tasks(n=300, seed=42)
    kinds = Counter(check_answer(r) for r in records)
    assert set(kinds) == {"add", "reverse", "sort", "count", "upper", "capital"}


def test_demo_tasks_are_valid_and_hold_duplicates():
    records = make_tasks(n=300, seed=42)
    kept, report = data.validate(records, on_invalid="error", duplicates="drop")
    assert report["dropped"]["duplicate"] > 0  # "duplicates are left in, as in real data"
    assert len(kept) + report["dropped"]["duplicate"] == 300


def prepare(source, folder, **dataset):
    """The prepare_data step on `source`, its outputs in `folder`."""
    from lmsweep.settings import Dataset
    from lmsweep.steps import prepare_data

    settings = prepare_data.Settings(dataset=Dataset(**{
        **dict(source=str(source), split="train", revision=None, synthetic_size=0, test_size=12, train_size=None,
               on_invalid="error", duplicates="drop"), **dataset}), seed=1)
    paths = prepare_data.Paths(source=[str(source)], train=str(folder / "train.jsonl"),
                               test=str(folder / "test.jsonl"), manifest=str(folder / "manifest.json"))
    return prepare_data.run(settings, paths), paths


def test_prepare_data_writes_the_split_and_a_manifest_of_what_it_read(tmp_path):
    from lmsweep.io import read_jsonl, sha256_file, write_jsonl
    from lmsweep.records import Manifest

    source = tmp_path / "data.jsonl"
    records = [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(40)]
    write_jsonl(source, records + [{"instruction": "", "input": "", "output": "x"}, records[3]])
    manifest, paths = prepare(source, tmp_path, on_invalid="drop")
    assert Manifest.load(paths.manifest) == manifest
    assert manifest.read == {"kind": "file", "path": str(source), "sha256": sha256_file(source)}
    assert manifest.records_read == 42 and manifest.valid_records == 40 and manifest.duplicates == 1
    assert (manifest.n_train, manifest.n_test) == (len(read_jsonl(paths.train)), 12)
    assert manifest.sha256 == {"train": sha256_file(paths.train), "test": sha256_file(paths.test)}


def test_prepare_data_warns_of_train_test_overlap_and_a_small_split(tmp_path, caplog):
    """Issue 18: with duplicates: keep, 10 of 24 test prompts stood in training without a word anywhere."""
    from lmsweep.io import write_jsonl

    source = tmp_path / "data.jsonl"
    records = [{"instruction": f"Say {i % 20}.", "input": "", "output": f"{i % 20}"} for i in range(60)]
    write_jsonl(source, records)  # every instruction three times
    with caplog.at_level("WARNING"):
        manifest, _ = prepare(source, tmp_path, duplicates="keep")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert manifest.train_test_overlap > 0
    assert any(w.startswith(f"{manifest.train_test_overlap} of 12 test prompts (instruction and input) also stand "
                            "in the training split") for w in warned), warned
    assert any(w.startswith("the test split has 12 records: intervals are wide") for w in warned), warned
    with pytest.raises(data.DatasetError, match=r"dataset.test_size=0.05 gives 3 test records; at least 8"):
        prepare(source, tmp_path, duplicates="keep", test_size=0.05)
