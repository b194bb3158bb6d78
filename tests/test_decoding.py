"""Decoding configs: the study's baseline and its one-parameter-at-a-time sweep."""

import copy
from pathlib import Path

import pytest
import yaml

from lmsweep.decoding import DecodingError, expand, moved_parameters, names, problems

REPO = Path(__file__).resolve().parents[1]

STUDY_NAMES = [
    "baseline",
    "top_k_10", "top_k_25", "top_k_40", "top_k_75",
    "num_beams_2", "num_beams_4", "num_beams_6", "num_beams_8",
    "temperature_0.25", "temperature_0.5", "temperature_0.7", "temperature_1.0",
]
BASELINE = {"do_sample": True, "top_k": 50, "num_beams": 1, "temperature": 0.8, "max_new_tokens": 16}


@pytest.fixture(scope="module")
def study():
    return yaml.safe_load((REPO / "config.yaml").read_text())["decoding"]


def section(sweep=None, extra=None, **baseline):
    return {"baseline": {**BASELINE, **baseline}, "sweep": sweep or {}, "extra": extra or {}}


def test_the_study_expands_to_13_named_configs(study):
    configs = expand(study)
    assert sorted(configs) == sorted(STUDY_NAMES)
    assert configs["baseline"] == study["baseline"]


def test_every_swept_config_moves_exactly_one_value(study):
    configs = expand(study)
    baseline = configs["baseline"]
    moved = moved_parameters(study)
    assert sorted(moved) == sorted(STUDY_NAMES[1:])
    for name, settings in configs.items():
        if name == "baseline":
            continue
        changed = {k: v for k, v in settings.items() if baseline.get(k) != v}
        parameter, value = moved[name]
        assert changed == {parameter: value}, name
        assert set(settings) == set(baseline), name
        assert name == f"{parameter}_{value}"


def test_moved_parameters_mapping():
    assert moved_parameters({"baseline": BASELINE, "sweep": {"top_k": [10, 25], "do_sample": [False]}}) == {
        "top_k_10": ["top_k", 10],
        "top_k_25": ["top_k", 25],
        "do_sample_false": ["do_sample", False],
    }
    assert moved_parameters({"baseline": BASELINE}) == {}


def test_expand_does_not_share_or_change_the_input(study):
    before = copy.deepcopy(study)
    configs = expand(study)
    configs["baseline"]["top_k"] = 1
    configs["top_k_10"]["temperature"] = 9.0
    assert study == before
    assert configs["top_k_25"]["temperature"] == study["baseline"]["temperature"]


def test_extra_configs_override_the_baseline():
    configs = expand(section(extra={"greedy": {"do_sample": False, "num_beams": 1}}))
    assert configs["greedy"] == {**BASELINE, "do_sample": False}


def test_an_int_is_a_valid_float():
    assert expand(section(sweep={"temperature": [1]}))["temperature_1"]["temperature"] == 1


def test_greedy_ignores_sampling_only_limits():
    # temperature and top_k only matter when sampling; a greedy baseline may carry any value.
    expand(section(do_sample=False, temperature=0.0, top_k=0))


@pytest.mark.parametrize(
    "bad, message",
    [
        (section(top_z=5), r"unknown parameter 'top_z'"),
        (section(sweep={"beams": [2]}), r"'beams_2': unknown parameter 'beams'"),
        (section(top_k="10"), r"top_k='10' must be a int"),
        (section(do_sample="yes"), r"do_sample='yes' must be a bool"),
        (section(num_beams=True), r"num_beams=True must be a int"),
        (section(sweep={"temperature": ["hot"]}), r"'temperature_hot': temperature='hot' must be a float"),
        (section(max_new_tokens=2.5), r"max_new_tokens=2.5 must be a int"),
        (section(sweep={"top_k": [0]}), r"'top_k_0': top_k=0 must be >= 1"),
        (section(sweep={"temperature": [0.0]}), r"'temperature_0.0': temperature=0.0 must be > 0"),
        (section(temperature=-0.5), r"'baseline': temperature=-0.5 must be > 0 when do_sample is true"),
        (section(sweep={"num_beams": [0]}), r"'num_beams_0': num_beams=0 must be >= 1"),
        (section(max_new_tokens=0), r"max_new_tokens must be >= 1"),
        (section(sweep={"top_p": [1.5]}), r"top_p must be in \(0, 1\]"),
        (section(sweep={"top_k": [10, 25, 10]}), r"decoding.sweep.top_k: value 10 is listed twice"),
        (section(extra={"top_k_10": {"top_k": 11}}, sweep={"top_k": [10]}), r"decoding.extra.top_k_10: .*already used"),
        (section(extra={"baseline": {"top_k": 11}}), r"decoding.extra.baseline: .*already used"),
        (section(extra={"../up": {"top_k": 11}}), r"name '../up' is not allowed"),
        (section(extra={"two words": {}}), r"name 'two words' is not allowed"),
    ],
)
def test_invalid_sections_raise_a_decoding_error(bad, message):
    with pytest.raises(DecodingError, match=message):
        expand(bad)


@pytest.mark.parametrize("sweep", [{"top_k": [10, 50]}, {"do_sample": [True]}, {"temperature": [0.8]}])
def test_a_sweep_value_equal_to_the_baseline_is_refused(sweep):
    (parameter, values), = sweep.items()
    with pytest.raises(DecodingError, match=rf"^decoding.sweep.{parameter}: {values[-1]!r} is the baseline's value, "
                                            rf"so {parameter}_\S+ would be the baseline config twice; remove it"):
        expand(section(sweep=sweep))


def test_a_value_the_baseline_does_not_set_may_be_swept():
    baseline = {k: v for k, v in BASELINE.items() if k != "top_k"}
    assert "top_k_50" in expand({"baseline": baseline, "sweep": {"top_k": [50]}})


def test_every_problem_is_listed_once():
    bad = section(sweep={"top_k": [0, 50], "num_beams": [2, 2]}, extra={"hot": {"temperature": -1.0}}, top_p=1.5)
    found = problems(bad)
    assert found == [
        "decoding.sweep.top_k: 50 is the baseline's value, so top_k_50 would be the baseline config twice; remove it "
        "from the sweep",
        "decoding.sweep.num_beams: value 2 is listed twice",
        "decoding config 'baseline': top_p must be in (0, 1]",
        # top_k_0 has the baseline's top_p too, but that is said once, for the baseline
        "decoding config 'top_k_0': top_k=0 must be >= 1",
        "decoding config 'hot': temperature=-1.0 must be > 0 when do_sample is true (set do_sample: false for "
        "greedy decoding)",
    ]
    with pytest.raises(DecodingError) as err:
        expand(bad)
    assert str(err.value).splitlines() == found
    assert problems(section(sweep={"top_k": [10]})) == []


def test_names_are_read_without_checking():
    assert names(section(sweep={"top_k": [0, 10], "beams": [2]}, extra={"x y": {}})) == [
        "baseline", "top_k_0", "top_k_10", "beams_2", "x y"]


@pytest.mark.parametrize("key", ["do_sample", "max_new_tokens"])
def test_baseline_must_set_do_sample_and_max_new_tokens(key):
    bad = section()
    del bad["baseline"][key]
    with pytest.raises(DecodingError, match=rf"decoding.baseline.{key} must be set explicitly"):
        expand(bad)


def test_missing_baseline():
    with pytest.raises(DecodingError, match="decoding.baseline is missing"):
        expand({"sweep": {"top_k": [10]}})


def test_equal_values_of_different_spelling_are_listed_twice():
    with pytest.raises(DecodingError, match="listed twice"):
        expand(section(sweep={"temperature": [1, 1.0]}))
