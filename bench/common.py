"""What the benchmarks share: the study's architectures with random weights, Alpaca-like records, a GPU busy meter.

The GPU host is offline (no weights can be downloaded), so each model is a real
architecture from its published configuration with random (seeded) weights,
written to a folder and loaded through lmsweep's own loaders, as the workflow
loads a Hub model. The tokenizer is lmsweep's byte-level BPE (lmsweep.tiny),
trained on the benchmark's own text. Random weights rarely emit EOS, so
generations run to max_new_tokens: every timing is at a fixed length.
"""

import contextlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

# Published configurations: Llama-2-7B (NousResearch/Llama-2-7b-hf), Mistral-7B-v0.1, Phi-2.
SHAPES = {
    "llama2_7b": ("llama", dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                                num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                                max_position_embeddings=4096, rms_norm_eps=1e-5)),
    "mistral_7b": ("mistral", dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                                   num_key_value_heads=8, intermediate_size=14336, vocab_size=32000,
                                   max_position_embeddings=32768, sliding_window=4096, rope_theta=10000.0)),
    "phi2": ("phi", dict(hidden_size=2560, num_hidden_layers=32, num_attention_heads=32, intermediate_size=10240,
                         vocab_size=51200, max_position_embeddings=2048, partial_rotary_factor=0.4)),
    # A few-MB stand-in for running the benchmarks' code on a CPU (tests, a laptop): not a measurement.
    "tiny": ("llama", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                           intermediate_size=128, vocab_size=1024, max_position_embeddings=1024)),
    # The same code paths as Mistral (sliding window, grouped key/value heads) and Phi-2 (partial rotary), small.
    "tiny_mistral": ("mistral", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                     intermediate_size=128, vocab_size=1024, max_position_embeddings=1024,
                                     sliding_window=4096)),
    "tiny_phi": ("phi", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             vocab_size=1024, max_position_embeddings=1024, partial_rotary_factor=0.4)),
}
WORDS = ("apple river stone garden copper falcon violet meadow orbit pepper candle cloud lemon piano tiger "
         "window forest rocket silver harbor lantern marble thunder velvet compass glacier saddle").split()


def records(n: int, seed: int = 0, prompt_words=(25, 90), answer_words: int = 110) -> list:
    """Alpaca-format records with Alpaca-like lengths (prompts of 40-120 tokens, answers ~150)."""
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        words = rng.randint(*prompt_words)
        out.append({
            "id": i, "instruction": "Rewrite the following words as a story.",
            "input": " ".join(rng.choice(WORDS) for _ in range(words)),
            "output": " ".join(rng.choice(WORDS) for _ in range(answer_words)),
        })
    return out


def build(shape: str, folder: Path, seed: int = 0) -> Path:
    """A random-weight model of `shape` with lmsweep's tokenizer, saved (safetensors) to `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, PhiConfig

    from lmsweep.prompts import format_prompt
    from lmsweep.tiny import train_tokenizer

    if (folder / "config.json").exists():
        return folder
    architecture, sizes = SHAPES[shape]
    texts = [format_prompt(r) + r["output"] for r in records(2000, seed=seed + 1)]
    tokenizer = train_tokenizer(texts, min(sizes["vocab_size"], 8000))
    config_class = {"llama": LlamaConfig, "mistral": MistralConfig, "phi": PhiConfig}[architecture]
    config = config_class(**sizes, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def random_adapter(base: Path, folder: Path, targets, r: int = 16, seed: int = 0) -> Path:
    """A LoRA adapter of rank r on `targets` with random A and B (a trained adapter is not zero), saved.

    Built on a weightless (meta) copy of the base: only the shapes are needed.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        return folder
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets),
                                             task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    state = {name: (torch.randn(param.shape, generator=generator) * 0.02).to(torch.bfloat16)
             for name, param in model.named_parameters() if "lora_" in name}
    folder.mkdir(parents=True, exist_ok=True)
    saved = get_peft_model_state_dict(model, state_dict=state)
    save_file({k: v.contiguous() for k, v in saved.items()}, folder / "adapter_model.safetensors")
    model.peft_config["default"].base_model_name_or_path = str(base)
    model.peft_config["default"].save_pretrained(folder)
    return folder


def load_settings(load_in_4bit: bool = False, weights: str = "as_trained", merged_folder: bool = False):
    """How a bench loads a model (lmsweep.settings.Load): a local folder, NF4 with double quantization and
    bf16 compute when `load_in_4bit`, as config.yaml's quantization."""
    from lmsweep.settings import Load, Quantization

    return Load(revision=None, snapshot=None, source=None, trust_remote_code=False,
                quantization=Quantization(load_in_4bit=load_in_4bit, quant_type="nf4", double_quant=True,
                                          compute_dtype="bfloat16"),
                weights=weights, merged_folder=merged_folder, merged_from_4bit=False)


def show_logs(stream=None) -> None:
    """lmsweep's log lines (its modules log through `logging`) on `stream` (default: stdout), as a job's log
    shows them: the message alone, "warning: " before a warning."""
    import logging

    from lmsweep.runtime.logs import Formatter

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(Formatter("%(message)s"))
    logger = logging.getLogger("lmsweep")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@contextlib.contextmanager
def cudnn_attention():
    """The old path's attention: PyTorch free to pick cuDNN's kernel (lmsweep before models.attention_kernels)."""
    import torch

    from lmsweep import models

    keep, was = models.attention_kernels, torch.backends.cuda.cudnn_sdp_enabled()
    models.attention_kernels = lambda: None
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        yield
    finally:
        models.attention_kernels = keep
        torch.backends.cuda.enable_cudnn_sdp(was)


class BusyMeter:
    """Share of time the GPU was busy (NVML's utilization, sampled every 50 ms) while the block ran."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()

    def __enter__(self):
        import torch

        self.started = time.perf_counter()
        if torch.cuda.is_available():
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self):
        import torch

        while not self._stop.wait(0.05):
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # noqa: BLE001 - no NVML: no number
                return

    def __exit__(self, *exc):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.started
        self._stop.set()
        self.busy = sum(self.samples) / len(self.samples) if self.samples else None


def environment() -> dict:
    import torch
    import transformers

    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
           "transformers": transformers.__version__}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=torch.cuda.get_device_capability(0), cuda=torch.version.cuda)
    for name in ("peft", "trl", "bitsandbytes", "accelerate"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


class Results:
    """Rows as they come, written to `path` (JSON) after each one, so a cut run keeps what it measured."""

    def __init__(self, path, **meta):
        self.path, self.data = Path(path), {"environment": environment(), **meta, "rows": []}
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, **row):
        self.data["rows"].append(row)
        self.path.write_text(json.dumps(self.data, indent=2, default=str))
        print(json.dumps(row, default=str), flush=True)

    def table(self, columns):
        lines = [" | ".join(columns), " | ".join("---" for _ in columns)]
        for row in self.data["rows"]:
            lines.append(" | ".join(_cell(row.get(c)) for c in columns))
        text = "\n".join(lines)
        print(text, flush=True)
        return text


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def out_dir() -> Path:
    return Path(os.environ.get("OUT", "bench-output"))
