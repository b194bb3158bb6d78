"""Rule perplexity: token perplexity, bits per byte and word perplexity of the reference answers.

With or without the adapter (lmsweep.answer_nll). Bits per byte and word
perplexity compare models with different tokenizers; token perplexity
compares the two variants of one model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from lmsweep.records import PerplexitySummary
from lmsweep.settings import Load

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    model: str
    variant: str
    base_model: str
    load: Load
    batch_size: int
    seed: int
    device: str
    prompt_format: str = "alpaca"  # or chat_template (lmsweep.prompts)


@dataclass(frozen=True)
class Paths:
    test: str
    base: list | str  # the model folder the workflow made (built, or merged), when there is one
    adapter: list | str
    summary: str
    per_example: str


def run(settings: Settings, paths: Paths, threads: int = 1) -> PerplexitySummary:
    from lmsweep.models import load_for_step

    adapter = paths.adapter or None
    load = settings.load
    model, tokenizer, device = load_for_step(settings.base_model, adapter, load, settings.device, threads,
                                             settings.seed, name=settings.model,
                                             merge=load.weights == "merged" and not load.merged_folder)
    import pandas as pd

    from lmsweep.answer_nll import SIGNATURES, answer_nll, bits_per_byte, perplexity, word_perplexity
    from lmsweep.io import atomic_path, read_jsonl
    from lmsweep.models import context_length, inference_path
    from lmsweep.prompts import Prompter
    from lmsweep.reproducibility import library_versions

    records = read_jsonl(paths.test)
    context = context_length(model)
    scored = answer_nll(model, Prompter(settings.prompt_format, tokenizer, settings.model), records,
                        settings.batch_size, max_tokens=context)
    table = pd.DataFrame([{"id": r["id"], **asdict(s)} for r, s in zip(records, scored)])
    with atomic_path(paths.per_example) as tmp:
        table.to_csv(tmp, index=False)
    prompts_cut = int((table.prompt_tokens_cut > 0).sum())
    answers_cut = int((table.bytes_cut > 0).sum())
    if prompts_cut:
        log.info(f"{prompts_cut} of {len(records)} examples were longer than the model's context of {context} "
                 f"tokens: their prompts were cut from the start (prompt_tokens_cut in {paths.per_example})")
    if answers_cut:
        log.warning(f"{answers_cut} of {len(records)} reference answers are longer than the model's context of "
                    f"{context} tokens on their own: only their first {int(table.bytes.sum())} of "
                    f"{int(table.bytes.sum() + table.bytes_cut.sum())} bytes are scored, and bits per byte and word "
                    f"perplexity count only those (bytes_cut in {paths.per_example})")
    summary = PerplexitySummary(
        model=settings.model, variant=settings.variant,
        perplexity=perplexity(table.nll, table.tokens),
        bits_per_byte=bits_per_byte(table.nll_text, table.bytes),
        word_perplexity=word_perplexity(table.nll_text, table.words),
        answer_tokens=int(table.tokens.sum()), answer_bytes=int(table.bytes.sum()),
        answer_words=int(table.words.sum()),
        examples_cut=int((table.prompt_tokens_cut + table.answer_tokens_cut > 0).sum()),
        answers_cut=answers_cut, bytes_cut=int(table.bytes_cut.sum()), n_examples=len(records),
        signatures=SIGNATURES, base_model=settings.base_model, inference=inference_path(load, adapter),
        model_source=load.source, adapter=adapter, seed=settings.seed, versions=library_versions(),
        prompt_format=settings.prompt_format,
    )
    summary.save(paths.summary)
    log.info(f"perplexity {summary.perplexity:.4f} over {summary.answer_tokens} answer tokens, "
             f"{summary.bits_per_byte:.4f} bits per byte over {summary.answer_bytes} bytes")
    return summary
