"""Loading base models, tokenizers and adapters; LoRA defaults per architecture.

Models load from safetensors only, and run remote code only where a model's
config entry asks for it.
"""

import logging

log = logging.getLogger(__name__)

# LoRA targets by `config.model_type`: every projection of attention and MLP.
LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
}
# The attention projections alone (adaptation sweep target_modules: attention): the first four, or Phi's three
# and its output projection `dense`.
ATTENTION_TARGETS = {model_type: targets[:4] for model_type, targets in LORA_TARGETS.items()}

# Every module name (the last part of a module's dotted name) of each architecture, as
# transformers builds it by default: lets the config check refuse a LoRA target or a
# module to save that no model of that architecture has, before any job runs.
# tests/test_models.py checks each entry against the real transformers class.
_DECODER = ["model", "embed_tokens", "layers", "self_attn", "q_proj", "k_proj", "v_proj", "o_proj", "mlp",
            "gate_proj", "up_proj", "down_proj", "act_fn", "input_layernorm", "post_attention_layernorm",
            "norm", "rotary_emb", "lm_head"]
MODULE_NAMES = {
    "llama": _DECODER,
    "mistral": _DECODER,
    "qwen2": _DECODER,
    "gemma": _DECODER,
    "phi": ["model", "embed_tokens", "embed_dropout", "layers", "self_attn", "q_proj", "k_proj", "v_proj", "dense",
            "mlp", "fc1", "fc2", "activation_fn", "input_layernorm", "resid_dropout", "final_layernorm",
            "rotary_emb", "lm_head"],
}


def skip_bitsandbytes(load_in_4bit: bool) -> None:
    """Keep bitsandbytes out of this process unless it loads a 4-bit model.

    Importing it (through peft and transformers) costs about 4 s of CPU per
    job, paid by every generation and perplexity job of a study; marking it
    absent in sys.modules makes both libraries treat it as not installed.
    Call before the first import of transformers or peft.
    """
    import sys

    if not load_in_4bit and "bitsandbytes" not in sys.modules:
        sys.modules["bitsandbytes"] = None


class ModelSetupError(RuntimeError):
    """A model that cannot be set up as configured; the message names the fix."""


def lora_targets(model_type: str, explicit=None, model: str = "") -> list:
    """The modules LoRA adapts: an explicit list, or the architecture's every projection (None, "all") or
    attention projections ("attention", an adaptation sweep's value)."""
    if explicit == "attention":
        if model_type not in ATTENTION_TARGETS:
            raise ModelSetupError(f"model {model!r}: no attention projections known for architecture {model_type!r}; "
                                  "remove target_modules: attention from adaptation.sweep")
        return ATTENTION_TARGETS[model_type]
    if explicit and explicit != "all":
        return list(explicit)
    if model_type not in LORA_TARGETS:
        raise ModelSetupError(
            f"model {model!r}: no default LoRA target modules for architecture {model_type!r}; "
            f"set models.{model}.lora.target_modules (known: {', '.join(sorted(LORA_TARGETS))})"
        )
    return LORA_TARGETS[model_type]


def resolve_device(requested: str = "auto") -> str:
    """The device a step runs on; on CUDA, with attention kernels that need no planning (attention_kernels)."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelSetupError("device: cuda was asked for, but torch sees no CUDA device; set device: auto")
    if requested == "cuda":
        attention_kernels()
    return requested


def attention_kernels() -> None:
    """Leave cuDNN out of PyTorch's scaled_dot_product_attention in this process; flash and efficient remain.

    cuDNN's attention builds an execution graph for every new shape before it
    runs it (about 67 ms each on an H200). Decoding with a growing key/value
    cache meets a new key length at every step, and padded training, perplexity and
    BERTScore batches a new length at nearly every batch, so a fresh job
    process spent more of its time planning than computing: on an H200 a
    generate job's generate() call (Llama-2-7B shape, 200 prompts) ran at
    1,880 tokens/s with cuDNN and 3,936 without it, the GPU busy 35% and 83%
    (BENCHMARKS.md, bench/decode.py). The flash and memory-efficient kernels
    need no planning. Once every length is planned cuDNN's kernel is faster
    (5,099 tokens/s in a second call), which a job that runs one call never
    reaches.
    """
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def check_quantization(load_in_4bit: bool, device: str, model: str) -> None:
    """4-bit loading needs bitsandbytes on CUDA: say so instead of falling back silently."""
    if load_in_4bit and device != "cuda":
        raise ModelSetupError(
            f"model {model!r}: quantization.load_in_4bit is true, but this machine has no CUDA "
            "device (bitsandbytes 4-bit needs one). Run on a GPU node, or set "
            "quantization.load_in_4bit: false to train in full precision."
        )


def quantization_config(quant):
    """bitsandbytes' 4-bit config of a Quantization (lmsweep.settings)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, quant.compute_dtype),
    )


def load_tokenizer(path: str, revision=None, trust_remote_code: bool = False, padding_side: str = "right"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        # Llama-2 and Mistral ship no pad token; the EOS is masked out by the attention mask.
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_base_model(
    path: str,
    device: str,
    revision=None,
    trust_remote_code: bool = False,
    quantization=None,
    name: str = "",
):
    """The base model on `device`: bf16 on CUDA, fp32 on CPU, 4-bit where `quantization` (a Quantization) asks."""
    import torch
    from transformers import AutoModelForCausalLM

    load_in_4bit = bool(quantization and quantization.load_in_4bit)
    check_quantization(load_in_4bit, device, name or path)
    kwargs = {
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": True,
        "dtype": torch.bfloat16 if device == "cuda" else torch.float32,
    }
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config(quantization)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if not load_in_4bit:
        model.to(device)
    return model


def load_for_inference(base: str, adapter: str | None, device: str, merge: bool = False, **kwargs):
    """Base model, with the LoRA adapter on top when `adapter` is given, in eval mode.

    merge=False: as trained (a 4-bit base stays 4-bit; the adapter runs beside it).
    merge=True: one plain model, fastest to run. A 4-bit base is first dequantized
    to its compute dtype: a QLoRA adapter was trained against the quantized
    weights, so it is merged into those, not into the original full-precision
    ones (which the job never sees). Then the adapter is merged into them.
    """
    model = load_base_model(base, device, **kwargs)
    if merge and getattr(model, "is_quantized", False):
        import torch

        model = model.dequantize(dtype=getattr(torch, kwargs["quantization"].compute_dtype))
    if adapter:
        from peft import PeftModel

        check_adapter_folder(adapter)
        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model


def check_adapter_folder(adapter) -> None:
    """An adapter loads from safetensors only: PEFT would unpickle an adapter_model.bin (torch.load), which
    runs whatever the pickle holds; refuse it by path before anything is read."""
    from pathlib import Path

    folder = Path(adapter)
    if not (folder / "adapter_model.safetensors").is_file():
        pickled = [p.name for p in folder.glob("*.bin")]
        raise ModelSetupError(
            f"adapter {folder} holds no adapter_model.safetensors"
            + (f" (only {', '.join(pickled)}: pickle files, which lmsweep never loads)" if pickled else "")
            + f"; rebuild it with `snakemake --cores 1 --forcerun {folder}`, or convert it to safetensors"
        )


def inference_path(load, adapter) -> str:
    """Which weights made the numbers, in words (recorded beside every number); `load` is a Load."""
    four_bit = load.quantization.load_in_4bit
    if load.merged_folder:  # the folder rule merge_adapter wrote
        base = "dequantized 4-bit" if load.merged_from_4bit else "full-precision"
        return f"merged: adapter merged into the {base} base"
    if load.weights == "merged":
        return "merged: " + ("4-bit base dequantized" if four_bit else "full-precision base") + \
            (", adapter merged in" if adapter else "")
    return "as trained: " + ("4-bit base" if four_bit else "full-precision base") + (" + adapter" if adapter else "")


def context_length(model) -> int | None:
    """The most tokens the model reads at once (max_position_embeddings), or None where it does not say."""
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None) if config is not None else None


def load_for_step(base_model: str, adapter: str | None, load, device: str, threads: int, seed: int,
                  padding_side: str = "right", name: str = "", merge: bool = False):
    """(model, tokenizer, device) as the generate, perplexity and merge steps load them.

    `load` is a Load (lmsweep.settings): revision, snapshot, trust_remote_code,
    quantization. bitsandbytes stays out of the process unless the model loads in
    4 bit (see skip_bitsandbytes), so call this before anything imports
    transformers or peft.
    """
    skip_bitsandbytes(load.quantization.load_in_4bit)
    import os

    # Grow CUDA memory in segments instead of reserving the largest batch's peak for good (read at CUDA's start).
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    import torch

    from lmsweep.reproducibility import seed_everything

    torch.set_num_threads(threads)
    seed_everything(seed)
    device = resolve_device(device)
    revision = load.revision_to_load
    log.info(f"loading {base_model}" + (f" at {revision}" if revision else "") + (f" with adapter {adapter}" if adapter else "")
             + f" on {device} ({inference_path(load, adapter)})")
    tokenizer = load_tokenizer(base_model, revision, load.trust_remote_code, padding_side=padding_side)
    model = load_for_inference(
        base_model, adapter, device, merge=merge, revision=revision, trust_remote_code=load.trust_remote_code,
        quantization=load.quantization, name=name,
    )
    return model, tokenizer, device


def unmatched_modules(wanted, module_names, to_save: bool = False) -> list:
    """The names in `wanted` that match none of `module_names`, by PEFT's own rules.

    A LoRA target matches a module whose full name is it or ends with "." + it;
    a module to save matches any full name that ends with it (PEFT's _set_trainable
    uses a plain endswith, so "head" would save "lm_head").
    """
    def found(name):
        if to_save:
            return any(full.endswith(name) for full in module_names)
        return any(full == name or full.endswith("." + name) for full in module_names)

    return [name for name in wanted or [] if not found(name)]


def close_module_names(name: str, module_names) -> list:
    """The module names `name` was most likely meant to be: the closest spellings, else the same last word."""
    import difflib

    leaf, names = name.rsplit(".", 1)[-1], sorted(set(module_names))
    scored = sorted(((difflib.SequenceMatcher(None, leaf, n).ratio(), n) for n in names), reverse=True)
    best = [n for ratio, n in scored if ratio >= 0.6 and ratio >= scored[0][0] - 0.05] if scored else []
    if best:
        return best[:3]
    word = leaf.rsplit("_", 1)[-1]  # nonexistent_head -> lm_head
    return [n for n in names if n.rsplit("_", 1)[-1] == word][:3]


def check_lora_modules(model, target_modules, modules_to_save, model_name: str) -> None:
    """Refuse LoRA target modules or modules to save that `model` (just loaded, before PEFT) lacks.

    PEFT trains nothing for a module to save it does not find, and the study
    would then rank an untrained model; an explicit target it does not find
    stops PEFT with a message that does not name the config key.
    `target_modules` None (lmsweep's per-architecture default) is not checked.
    """
    full_names = [name for name, _ in model.named_modules() if name]
    leaves = sorted({name.rsplit(".", 1)[-1] for name in full_names if not name.rsplit(".", 1)[-1].isdigit()})
    problems = []
    for key, wanted, to_save in (("target_modules", target_modules, False), ("modules_to_save", modules_to_save, True)):
        for name in unmatched_modules(wanted, full_names, to_save):
            close = close_module_names(name, leaves)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            problems.append(
                f"model {model_name!r}: lora.{key} names {name!r}, which is no module of this "
                f"{model.config.model_type} model{hint}; fix lora.{key} or models.{model_name}.lora.{key} "
                f"(module names: {', '.join(leaves)})"
            )
    if problems:
        raise ModelSetupError("\n".join(problems))
