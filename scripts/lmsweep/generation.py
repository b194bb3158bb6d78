"""Batched, seeded generation for the test prompts, halving the batch on OOM."""

from lmsweep.prompts import format_prompt


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def run_batches(items, batch_size: int, fn, log=print):
    """fn(batch) -> list for every batch; on out-of-memory halve the batch and retry, down to 1."""
    out, start = [], 0
    while start < len(items):
        batch = items[start : start + batch_size]
        try:
            out.extend(fn(batch))
        except Exception as err:  # noqa: BLE001 - only OOM is retried
            if not is_oom(err) or batch_size == 1:
                raise
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            batch_size = max(1, batch_size // 2)
            log(f"out of memory on a batch of {len(batch)}: retrying with batch size {batch_size}")
            continue
        start += len(batch)
    return out


def generate(model, tokenizer, records, settings: dict, batch_size: int, seed: int, log=print):
    """One prediction per record: the decoded continuation of its prompt."""
    import torch
    from tqdm.auto import tqdm

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    device = next(model.parameters()).device
    progress = tqdm(total=len(records), desc="generate", mininterval=5)

    def batch_fn(batch):
        # Seed from the batch's first example, so a batch halved on OOM starts identically.
        torch.manual_seed(seed + batch[0][0])
        prompts = [format_prompt(r) for _, r in batch]
        enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                **settings,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        progress.update(len(batch))
        return [t.strip() for t in texts]

    predictions = run_batches(list(enumerate(records)), batch_size, batch_fn, log=log)
    progress.close()
    return predictions
