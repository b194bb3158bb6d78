"""Generation for the test prompts, decoded the same way for every model.

The generation config is lmsweep's own: transformers' library defaults, then
the study's settings. A model folder's generation_config.json (Llama-2 ships
top_p 0.9 and a temperature) would otherwise fill every field the study leaves
unset, so models would be compared under different decoding. Only what defines
the model's tokens is kept from it: its BOS, EOS (one id or several) and pad
ids. A model entry may opt in to its own decoding defaults
(`models.<name>.decoding_defaults: model`).

Prompts are batched longest first (similar lengths share a batch: less
padding; the largest batch runs first, so an out-of-memory shows at once), the
batch is halved on out-of-memory, and each example samples from its own random
stream (lmsweep.sampling), so answers do not depend on the batch size.
"""

import logging
import time

from lmsweep.batching import run_batches
from lmsweep.models import context_length

log = logging.getLogger(__name__)

TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
# Bookkeeping, not decoding: never compared, never recorded.
BOOKKEEPING = {"transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash"}
# What generate() returns beside the tokens: never a decoding difference between model folders.
OUTPUT_ONLY = {"output_attentions", "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate"}
# Fields that only matter when sampling; with do_sample false they stay at the library's defaults.
SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_h")


class GenerationSetupError(RuntimeError):
    """Generation that cannot run as configured; the message names the fix."""


def library_defaults() -> dict:
    """transformers' own defaults for every decoding field (what generate() uses for a field nobody set)."""
    from transformers import GenerationConfig

    return dict(GenerationConfig._get_default_generation_params())


def _set_fields(config) -> dict:
    """The fields a GenerationConfig sets (not None), bookkeeping left out."""
    return {k: v for k, v in config.to_dict().items() if v is not None and k not in BOOKKEEPING}


def build_generation_config(settings: dict, model_config=None, tokenizer=None, model_defaults: bool = False):
    """(GenerationConfig, overridden) for one decoding config of one model.

    `model_config` is the model's own GenerationConfig (None: it has none).
    `overridden` maps each decoding default of the model folder that this run
    does not use to (the model's value, the value used).
    """
    from transformers import GenerationConfig

    own = _set_fields(model_config) if model_config is not None else {}
    own_decoding = {k: v for k, v in own.items() if k not in TOKEN_FIELDS and k not in OUTPUT_ONLY}
    values = library_defaults()
    if model_defaults:
        values.update(own_decoding)
    values.update(settings)
    if values.get("max_new_tokens") is not None:
        values["max_length"] = None  # max_new_tokens decides the length; the library's max_length 20 would only warn
    if not values.get("do_sample"):
        defaults = library_defaults()
        for key in SAMPLING_ONLY:
            values[key] = defaults.get(key)
    tokens = {key: own.get(key) for key in TOKEN_FIELDS}
    if tokenizer is not None:
        if tokens["eos_token_id"] is None:
            tokens["eos_token_id"] = tokenizer.eos_token_id
        if tokens["pad_token_id"] is None:
            tokens["pad_token_id"] = tokenizer.pad_token_id
        if tokens["bos_token_id"] is None:
            tokens["bos_token_id"] = tokenizer.bos_token_id
    config = GenerationConfig(**values, **{k: v for k, v in tokens.items() if v is not None})
    used = _set_fields(config)
    overridden = {k: (v, used.get(k)) for k, v in own_decoding.items() if used.get(k) != v}
    return config, overridden


def effective_settings(config) -> dict:
    """Every field generate() runs with (None fields are switched-off features), JSON-ready."""
    return dict(sorted(_set_fields(config).items()))


def eos_ids(config) -> set:
    eos = config.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


# Measured on an H200 (Llama-2-7B shape, transformers 5.24): beam search held about five times the
# key/value cache of its beams at its peak (reordered copies of the cache), sampling about one.
BEAM_SEARCH_MEMORY = 5


def auto_batch_size(model, n_prompts: int, longest: int, settings) -> int:
    """The most prompts whose key/value cache fits in 80% of the GPU's free memory (free_memory; at least 1).

    On a GPU a batch holds batch x num_beams sequences of up to prompt +
    max_new_tokens tokens, each with 2 x layers x key/value heads x head size
    cached values; the rest of a sampling step is small beside that, while
    beam search holds several copies (BEAM_SEARCH_MEMORY). The estimate is
    where the search starts: out of memory still halves it. On the CPU every
    prompt goes in one batch.
    """

    device = next(model.parameters()).device
    if device.type != "cuda":
        return max(1, n_prompts)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    itemsize = next(model.parameters()).element_size() if next(model.parameters()).is_floating_point() else 2
    per_token = 2 * config.num_hidden_layers * heads * head_dim * max(itemsize, 2)
    beams = max(1, settings.num_beams or 1)
    per_prompt = per_token * (longest + settings.max_new_tokens) * beams * (BEAM_SEARCH_MEMORY if beams > 1 else 1)
    return max(1, min(n_prompts, int(0.8 * free_memory(device) // per_prompt)))


def free_memory(device) -> int:
    """Bytes this process can still use on a CUDA device: the driver's free memory and what PyTorch's
    caching allocator holds unused (the driver counts that as taken; a second generate() call in a process
    would otherwise find a smaller batch: 15 prompts at 8 beams where the first call found 18)."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def encode_prompts(prompter, records, max_prompt_tokens: int | None):
    """Token ids of each prompt in the model's prompt format (lmsweep.prompts.Prompter), and how many
    tokens were cut to fit the model's context.

    A prompt longer than the model can take with max_new_tokens after it keeps
    its beginning-of-sequence token and its end (the instruction's tail and the
    "### Response:" line the answer follows), losing tokens from the middle-left.
    """
    encoded = []
    bos = prompter.tokenizer.bos_token_id
    for record in records:
        ids = prompter.prompt_ids(record)
        cut = 0
        if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
            cut = len(ids) - max_prompt_tokens
            keep_bos = bos is not None and ids[0] == bos
            ids = ids[:1] + ids[len(ids) - max_prompt_tokens + 1 :] if keep_bos else ids[-max_prompt_tokens:]
        encoded.append((ids, cut))
    return encoded


def generate(model, prompter, records, settings: dict, batch_size, seed: int, replicate: int = 0,
             generation_config=None) -> list:
    """One result per record, in record order: the prediction and how it was made. `prompter` is the
    model's prompt format with its tokenizer (lmsweep.prompts.Prompter).

    Each result: prediction, new_tokens, hit_max_new_tokens, prompt_tokens,
    prompt_tokens_cut, batch_size (of the generate() call that made it).
    """
    import torch
    from tqdm.auto import tqdm

    from lmsweep import sampling

    tokenizer = prompter.tokenizer
    if generation_config is None:
        generation_config, _ = build_generation_config(settings, tokenizer=tokenizer)
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    device = next(model.parameters()).device
    max_new = generation_config.max_new_tokens
    context = context_length(model)
    if context is not None and max_new >= context:
        raise GenerationSetupError(
            f"max_new_tokens {max_new} leaves no room for a prompt in the model's context of {context} tokens; "
            f"lower decoding.*.max_new_tokens below {context}"
        )
    encoded = encode_prompts(prompter, records, context - max_new if context else None)
    cut = sum(1 for _, c in encoded if c)
    if cut:
        log.warning(f"{cut} of {len(records)} prompts were longer than the model's context of {context} tokens "
            f"minus max_new_tokens {max_new}: cut to fit, keeping their end (prompt_tokens_cut in the output); a cut "
            "prompt may lose what its answer depends on: lower max_new_tokens to keep them whole")
    per_example = sampling.per_example_possible(generation_config)
    sampler = sampling.PerExampleSampler(generation_config) if per_example else None
    eos = eos_ids(generation_config)
    order = sorted(range(len(records)), key=lambda i: (-len(encoded[i][0]), i))
    progress = tqdm(total=len(records), desc="generate", mininterval=5)
    set_generation_config(model, generation_config)

    def batch_fn(batch):
        ids = [encoded[i][0] for i in batch]
        enc = tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(device)
        if sampler is not None:
            sampler.start([sampling.example_seed(seed, replicate, records[i]["id"]) for i in batch], device)
        elif generation_config.do_sample:
            # Beam sampling draws from the global generator: seeded by the batch's first example.
            torch.manual_seed(sampling.example_seed(seed, replicate, records[batch[0]]["id"]))
        with torch.no_grad():
            out = model.generate(
                **enc, generation_config=generation_config,
                logits_processor=[sampler] if sampler is not None else None,
            )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for i, row in zip(batch, new):
            ended = next((n for n, token in enumerate(row) if token in eos), None)
            results.append({
                "prediction": tokenizer.decode(row, skip_special_tokens=True).strip(),
                "new_tokens": len(row) if ended is None else ended,
                "hit_max_new_tokens": ended is None and len(row) >= max_new,
                "prompt_tokens": len(encoded[i][0]),
                "prompt_tokens_cut": encoded[i][1],
                "batch_size": len(batch),
                "sampling": "per-example" if sampler else ("per-batch" if generation_config.do_sample else "none"),
            })
        progress.update(len(batch))
        return results

    if batch_size == "auto":
        batch_size = auto_batch_size(model, len(records), len(encoded[order[0]][0]) if records else 0,
                                     generation_config)
        log.info(f"batch size {batch_size}, found for this GPU's free memory (generation.batch_size: auto)")
    started = time.perf_counter()
    made = run_batches(order, batch_size, batch_fn, describe=lambda i: f"test record {records[i]['id']}")
    progress.close()
    elapsed = time.perf_counter() - started
    results = [None] * len(records)
    for i, result in zip(order, made):
        results[i] = result
    tokens = sum(r["new_tokens"] for r in results)
    log.info(f"generated {tokens} tokens for {len(records)} prompts in {elapsed:.1f} s "
             f"({tokens / max(elapsed, 1e-9):.1f} tokens/s)")
    return results


def set_generation_config(model, generation_config) -> None:
    """Make `generation_config` the model's own too: generate() fills unset fields from the model's."""
    model.generation_config = generation_config
    if hasattr(model, "get_base_model"):  # a PeftModel
        model.get_base_model().generation_config = generation_config
