"""Model loading: LoRA defaults per architecture, 4-bit checks, tokenizers, keeping bitsandbytes out."""

import subprocess
import sys
from pathlib import Path

import pytest

from lmsweep import models
from lmsweep.models import LORA_TARGETS, ModelSetupError

SCRIPTS = Path(models.__file__).resolve().parents[1]


# --- LoRA targets --------------------------------------------------------------------------------------------


def test_default_lora_targets():
    attention_and_mlp = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert models.lora_targets("llama") == attention_and_mlp
    assert models.lora_targets("mistral") == attention_and_mlp
    assert models.lora_targets("phi") == ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]


def test_explicit_lora_targets_win():
    assert models.lora_targets("llama", ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    assert models.lora_targets("gpt_neox", ("query_key_value",), "pythia") == ["query_key_value"]


def test_unknown_architecture_names_the_config_key():
    with pytest.raises(ModelSetupError, match=r"models\.pythia\.lora\.target_modules") as err:
        models.lora_targets("gpt_neox", None, "pythia")
    assert "gpt_neox" in str(err.value)


@pytest.mark.parametrize("arch", ["llama", "mistral", "phi"])
def test_default_targets_exist_in_the_real_architecture(build_tiny, arch):
    import torch
    from peft import LoraConfig, get_peft_model

    model = models.load_base_model(str(build_tiny(arch)), "cpu")
    assert model.config.model_type == arch
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(LORA_TARGETS[arch]) <= linear
    # and peft wraps each of them once per layer
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=models.lora_targets(arch)))
    wrapped = [name for name, _ in peft_model.named_modules() if name.endswith(".lora_A")]
    assert len(wrapped) == len(LORA_TARGETS[arch]) * model.config.num_hidden_layers


# --- quantization --------------------------------------------------------------------------------------------


def test_4bit_without_cuda_is_a_clear_error():
    with pytest.raises(ModelSetupError, match=r"'m'.*quantization\.load_in_4bit.*no CUDA") as err:
        models.check_quantization(True, "cpu", "m")
    assert "quantization.load_in_4bit: false" in str(err.value)  # the fix


def test_4bit_on_cuda_and_full_precision_anywhere_pass():
    models.check_quantization(True, "cuda", "m")
    models.check_quantization(False, "cpu", "m")


def schema_quantization(**given):
    """The quantization settings the config check makes of `given` (the schema's defaults filled in)."""
    from pathlib import Path

    import yaml

    from lmsweep.configcheck import schema_errors
    from lmsweep.settings import Quantization, from_mapping

    schema = yaml.safe_load((Path(models.__file__).resolve().parents[2] / "config.schema.yaml").read_text())
    config = {"quantization": dict(given)}
    schema_errors(config, schema)  # fills in the defaults, as the Snakefile's check does
    return from_mapping(Quantization, config["quantization"], "quantization")


def test_quantization_defaults_are_qlora():
    """The defaults live in the schema alone: 4-bit NF4 with double quantization, computing in bf16."""
    import torch
    from transformers import BitsAndBytesConfig

    config = models.quantization_config(schema_quantization(load_in_4bit=True))
    assert isinstance(config, BitsAndBytesConfig)
    assert config.load_in_4bit
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_quantization_config_takes_the_settings():
    import torch

    config = models.quantization_config(schema_quantization(quant_type="fp4", double_quant=False,
                                                            compute_dtype="float16"))
    assert config.bnb_4bit_quant_type == "fp4"
    assert config.bnb_4bit_use_double_quant is False
    assert config.bnb_4bit_compute_dtype == torch.float16


def test_load_base_model_4bit_on_cpu_fails_before_loading(monkeypatch, tmp_path):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("from_pretrained was called")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    with pytest.raises(ModelSetupError, match="load_in_4bit"):
        models.load_base_model(str(tmp_path / "absent"), "cpu", quantization=schema_quantization(load_in_4bit=True),
                               name="m")


def test_load_base_model_on_cpu_is_float32_and_for_inference_in_eval_mode(tiny_llama):
    import torch

    model = models.load_for_inference(str(tiny_llama), None, "cpu", quantization=schema_quantization())
    assert next(model.parameters()).dtype == torch.float32
    assert not model.training


def test_resolve_device_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    was = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        assert models.resolve_device("auto") == "cpu"
        assert models.resolve_device("cpu") == "cpu"
        with pytest.raises(ModelSetupError, match="device: auto"):
            models.resolve_device("cuda")
        assert torch.backends.cuda.cudnn_sdp_enabled(), "a CPU job leaves the CUDA attention settings alone"
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


def test_a_cuda_job_leaves_cudnn_attention_out(monkeypatch):
    """cuDNN's attention plans each new shape anew: a generate job's call ran at 1,880 tokens/s with it against
    3,936 without, on an H200 (BENCHMARKS.md). Every GPU step resolves its device through here."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    was = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert models.resolve_device("auto") == "cuda"
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)


# --- tokenizer -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_without_pad(tiny_llama, tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("nopad")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).pad_token is None
    return folder


def test_load_tokenizer_sets_a_missing_pad_token_to_eos(tokenizer_without_pad):
    tokenizer = models.load_tokenizer(str(tokenizer_without_pad))
    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.padding_side == "right"


def test_load_tokenizer_keeps_an_existing_pad_token_and_sets_the_side(tiny_llama):
    tokenizer = models.load_tokenizer(str(tiny_llama), padding_side="left")
    assert tokenizer.pad_token == "<pad>" != tokenizer.eos_token
    assert tokenizer.padding_side == "left"


# --- keeping bitsandbytes out --------------------------------------------------------------------------------


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
        env={"PYTHONPATH": str(SCRIPTS), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_skip_bitsandbytes_hides_it_from_peft_and_transformers():
    out = run_python(
        "import sys\n"
        "from lmsweep.models import skip_bitsandbytes\n"
        "skip_bitsandbytes(False)\n"
        "import peft, transformers\n"
        "from transformers.utils import is_bitsandbytes_available\n"
        "print(sys.modules.get('bitsandbytes', 'absent') is None, is_bitsandbytes_available())\n"
    )
    assert out.split() == ["True", "False"]


def test_bitsandbytes_is_importable_here():
    # Otherwise the test above would pass without skip_bitsandbytes doing anything. Asked of a fresh process:
    # a step run in this one (load_for_step) may have hidden it here already.
    import subprocess
    import sys

    code = "import importlib.util; print(importlib.util.find_spec('bitsandbytes') is not None)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["True"]


def test_skip_bitsandbytes_does_nothing_for_4bit(monkeypatch):
    monkeypatch.delitem(sys.modules, "bitsandbytes", raising=False)
    models.skip_bitsandbytes(True)
    assert "bitsandbytes" not in sys.modules


def test_skip_bitsandbytes_marks_it_absent(monkeypatch):
    monkeypatch.delitem(sys.modules, "bitsandbytes", raising=False)
    models.skip_bitsandbytes(False)
    assert "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None


def test_skip_bitsandbytes_leaves_an_imported_module_alone(monkeypatch):
    import types

    fake = types.ModuleType("bitsandbytes")
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    models.skip_bitsandbytes(False)
    assert sys.modules["bitsandbytes"] is fake
