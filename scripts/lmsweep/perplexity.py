"""Perplexity of the reference answers given their prompts, answer tokens only.

The answer is tokenized exactly as TRL tokenized it for training: the prompt,
then prompt + answer + EOS, the answer starting where the two token sequences
part. Perplexity is exp(total NLL / total answer tokens): a token-weighted
corpus number, not a mean of per-example perplexities.
"""

import math

from lmsweep.prompts import format_prompt


def common_prefix_length(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode(tokenizer, record) -> tuple:
    """(input ids, number of leading prompt tokens) for one record."""
    prompt = format_prompt(record)
    prompt_ids = tokenizer(prompt)["input_ids"]
    full = tokenizer(prompt + record["output"])["input_ids"] + [tokenizer.eos_token_id]
    return full, common_prefix_length(prompt_ids, full)


def answer_nll(model, tokenizer, records, batch_size: int = 8, log=print):
    """Per-example (summed NLL in nats, answer token count); the batch is halved on out-of-memory."""
    import torch

    from lmsweep.generation import run_batches

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id

    def batch_nll(batch):
        out = []
        encoded = [encode(tokenizer, r) for r in batch]
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

    return run_batches(records, batch_size, batch_nll, log=log)


def perplexity(per_example) -> float:
    total_nll = sum(n for n, _ in per_example)
    total_tokens = sum(t for _, t in per_example)
    return math.exp(total_nll / total_tokens)
