"""Rule convert_gguf: a model folder is made only from the file the config names (its sha256 checked before
anything loads); a package that does not ship the file is named with the install command. The conversion
itself runs on the real SmolLM2 file in tests/workflow/test_demo_chat.py (its logits equal the GGUF's)."""

import pytest

from lmsweep.settings import Gguf
from lmsweep.sources import GgufSourceError, gguf_path
from lmsweep.steps import convert_gguf


def test_a_file_whose_sha256_differs_is_refused_before_it_loads(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 60)
    settings = convert_gguf.Settings(model="smol", gguf=Gguf(file=str(fake), sha256="0" * 64))
    with pytest.raises(convert_gguf.GgufError, match=r"has sha256 [0-9a-f]{64}, not the 0{64} that "
                                                      r"models\.smol\.gguf\.sha256 names"):
        convert_gguf.run(settings, convert_gguf.Paths(gguf=str(fake), model=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_a_package_path_resolves_to_the_installed_file_and_a_missing_package_is_named():
    import importlib.util

    spec = importlib.util.find_spec("gguf")  # any installed package with a folder
    assert gguf_path("package:gguf/x.gguf") == f"{list(spec.submodule_search_locations)[0]}/x.gguf"
    assert gguf_path("~/m.gguf").endswith("/m.gguf") and not gguf_path("~/m.gguf").startswith("~")
    with pytest.raises(GgufSourceError, match="no installed Python package 'no_such_pkg' ships it; install"):
        gguf_path("package:no_such_pkg/m.gguf")


def test_the_config_names_a_missing_gguf_file_and_a_bad_sha256(tmp_path):
    import yaml

    from lmsweep.configcheck import config_problems
    from test_config_errors import DEMO, SCHEMA

    config = yaml.safe_load(yaml.safe_dump(DEMO))
    config["models"] = {"smol": {"gguf": {"file": str(tmp_path / "none.gguf"), "sha256": "0" * 64}},
                        "bad": {"gguf": {"file": "package:no_such_pkg/m.gguf", "sha256": "XYZ"}}}
    problems = config_problems(config, SCHEMA, [])
    assert any(p.startswith("models.bad.gguf.sha256: 'XYZ' is not a sha256: give the 64 lowercase hex digits")
               for p in problems), problems
    assert f"models.smol.gguf.file: {tmp_path / 'none.gguf'} is not a file; give the path of a .gguf file" in problems
