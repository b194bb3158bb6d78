"""Tiny models of real architectures, built offline for the demo and the tests.

The architecture classes are transformers' own (LlamaForCausalLM,
MistralForCausalLM, PhiForCausalLM); only the sizes are small and the weights
random (seeded). The tokenizer is a byte-level BPE trained with the
`tokenizers` library on the training text.
"""

SPECIAL = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def train_tokenizer(texts, vocab_size: int):
    """A byte-level BPE tokenizer (no unknown bytes) that prepends BOS, as Llama's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id(SPECIAL["bos_token"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def model_config(spec, tokenizer):
    """A transformers config of the architecture and sizes of `spec` (lmsweep.settings.Build)."""
    from transformers import LlamaConfig, MistralConfig, PhiConfig

    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    architecture = spec.architecture
    if architecture == "llama":
        return LlamaConfig(num_key_value_heads=spec.num_heads, **common)
    if architecture == "mistral":
        # Grouped-query attention, as in Mistral-7B (8 key/value heads for 32 query heads).
        return MistralConfig(num_key_value_heads=max(1, spec.num_heads // 2), sliding_window=None, **common)
    if architecture == "phi":
        return PhiConfig(partial_rotary_factor=0.5, **common)
    raise ValueError(f"unknown tiny architecture {architecture!r}; use llama, mistral or phi")


def build(spec, texts, seed: int, out_dir) -> None:
    """Write a tokenizer and a randomly initialised model (safetensors) to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = train_tokenizer(texts, spec.vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(model_config(spec, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
