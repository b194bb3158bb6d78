"""Work in batches that halve on out-of-memory: generation, perplexity and BERTScore share it."""

import logging

log = logging.getLogger(__name__)


def is_oom(err: BaseException) -> bool:
    """Out of memory, as accelerate tells it (CUDA's caching allocator, the CPU allocator, MPS, XPU)."""
    from accelerate.utils.memory import should_reduce_batch_size

    return should_reduce_batch_size(err)


def run_batches(items, batch_size: int, fn, describe=None):
    """fn(batch) -> list for every batch; on out-of-memory halve the batch and retry, down to 1.

    The halving is accelerate's find_executable_batch_size (it frees the
    device's cache between tries); batches already done are kept, and the rest
    goes on at the size that fitted. Out of memory on a single item is raised
    with `describe(item)` (say, its record id), since halving cannot help it.
    """
    from accelerate.utils import find_executable_batch_size

    out, state = [], {"start": 0, "size": None, "tried": 0}

    def halve():
        state["next"] = state["size"] // 2
        return state["next"]

    @find_executable_batch_size(starting_batch_size=batch_size, reduce_batch_size_fn=halve)
    def attempt(size):
        if state["size"] is not None:
            log.warning(f"out of memory on a batch of {state['tried']}: retrying with batch size {size}")
        state["size"] = size
        while state["start"] < len(items):
            batch = items[state["start"] : state["start"] + size]
            state["tried"] = len(batch)
            try:
                out.extend(fn(batch))
            except Exception as err:  # noqa: BLE001 - the decorator retries out-of-memory, re-raises the rest
                state["error"] = err
                raise
            state["start"] += len(batch)

    try:
        attempt()
    except RuntimeError as err:
        if "No executable batch size found" not in str(err):
            raise
        cause = state.get("error")
        if describe is None:
            raise cause from None
        item = items[state["start"]]
        raise MemoryError(f"out of memory on {describe(item)} alone: {cause}") from cause
    return out
