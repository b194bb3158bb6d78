"""How well a model predicts the reference answers given their prompts, answer tokens only.

The answer is tokenized exactly as TRL tokenized it for training: the prompt,
then prompt + answer + EOS, the answer starting where the two token sequences
part. The summed negative log-likelihood (NLL, in nats) of those tokens is
reported three ways, all corpus numbers (totals first, then the ratio; never a
mean of per-example values):

- token perplexity, exp(total NLL / total answer tokens): the usual number,
  but it counts in the model's own tokens, so it compares the two variants of
  one model (same tokenizer), not models with different tokenizers (Llama-2's
  32,000 tokens against Phi-2's 51,200);
- bits per byte, total NLL / (total UTF-8 bytes of the answers * ln 2), and
- word perplexity, exp(total NLL / total words of the answers): both count in
  units of the text itself, so they compare models, as lm-evaluation-harness
  reports them (words are `re.split(r"\\s+", answer)`, its count_words).
"""

import math
import re

from lmsweep.prompts import format_prompt


def common_prefix_length(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode(tokenizer, record, max_tokens: int | None = None) -> tuple:
    """(input ids, number of leading prompt tokens, tokens cut) for one record.

    Where prompt and answer exceed `max_tokens` (the model's context), the
    prompt loses tokens from its start (after BOS) until the whole fits; an
    answer longer than the context on its own loses its end.
    """
    prompt = format_prompt(record)
    prompt_ids = tokenizer(prompt)["input_ids"]
    full = tokenizer(prompt + record["output"])["input_ids"] + [tokenizer.eos_token_id]
    n_prompt = common_prefix_length(prompt_ids, full)
    cut = 0
    if max_tokens is not None and len(full) > max_tokens:
        keep = 1 if tokenizer.bos_token_id is not None and full[0] == tokenizer.bos_token_id else 0
        cut = min(len(full) - max_tokens, max(0, n_prompt - keep - 1))
        full = full[:keep] + full[keep + cut :]
        n_prompt -= cut
        cut += max(0, len(full) - max_tokens)
        full = full[:max_tokens]
    return full, n_prompt, cut


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def count_words(text: str) -> int:
    """lm-evaluation-harness's count_words."""
    return len(re.split(r"\s+", text))


def answer_nll(model, tokenizer, records, batch_size: int = 8, log=print, max_tokens: int | None = None):
    """Per-example (summed NLL in nats, answer token count); the batch is halved on out-of-memory."""
    import torch

    from lmsweep.generation import run_batches

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id

    def batch_nll(batch):
        out = []
        encoded = [encode(tokenizer, r, max_tokens)[:2] for r in batch]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for row, (ids, n_prompt) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        logits = logits[:, :-1].float()
        targets = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="none"
        ).view(targets.shape)
        for row in range(len(encoded)):
            mask = targets[row] != -100
            out.append((nll[row][mask].sum().item(), int(mask.sum().item())))
        return out

    # Longest first (less padding per batch, an out-of-memory at once), results back in record order.
    order = sorted(range(len(records)), key=lambda i: (-len(records[i]["output"]) - len(format_prompt(records[i])), i))
    scored = run_batches([records[i] for i in order], batch_size, batch_nll, log=log,
                         describe=lambda r: f"test record {r['id']}")
    out = [None] * len(records)
    for i, result in zip(order, scored):
        out[i] = result
    return out


def perplexity(per_example) -> float:
    total_nll = sum(n for n, _ in per_example)
    total_tokens = sum(t for _, t in per_example)
    return math.exp(total_nll / total_tokens)


def bits_per_byte(nll, n_bytes) -> float:
    """Total NLL in bits over total bytes (lm-evaluation-harness's bits_per_byte)."""
    return sum(nll) / sum(n_bytes) / math.log(2)


def word_perplexity(nll, words) -> float:
    return math.exp(sum(nll) / sum(words))
