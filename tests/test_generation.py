"""Batched generation: OOM back-off, order, left padding and seeding."""

import pytest
import torch

from lmsweep.generation import generate, run_batches


def oom_above_two(calls):
    def fn(batch):
        calls.append(list(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    return fn


def test_run_batches_halves_the_batch_on_oom_and_keeps_order():
    calls, logged = [], []
    items = list(range(11))
    out = run_batches(items, 8, oom_above_two(calls), log=logged.append)
    assert out == [x * 10 for x in items]
    assert [len(c) for c in calls] == [8, 4, 2, 2, 2, 2, 2, 1]
    assert logged == [
        "out of memory on a batch of 8: retrying with batch size 4",
        "out of memory on a batch of 4: retrying with batch size 2",
    ]


def test_run_batches_without_oom_calls_each_batch_once():
    calls = []
    assert run_batches(list(range(5)), 2, lambda b: calls.append(b) or b, log=pytest.fail) == list(range(5))
    assert calls == [[0, 1], [2, 3], [4]]


def test_run_batches_reraises_other_errors():
    def fn(batch):
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        run_batches([1, 2, 3, 4], 4, fn, log=pytest.fail)


def test_run_batches_reraises_oom_at_batch_size_one():
    calls = []

    def fn(batch):
        calls.append(len(batch))
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        run_batches([1, 2, 3], 4, fn, log=lambda line: None)
    assert calls == [3, 2, 1]  # batch sizes 4 (3 items left), 2, 1, then it gives up


def test_a_runtime_error_saying_out_of_memory_counts_as_oom():
    calls = []

    def fn(batch):
        calls.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("CUDA error: out of memory")
        return batch

    assert run_batches([1, 2], 2, fn, log=lambda line: None) == [1, 2]
    assert calls == [2, 1, 1]


# --- generate() with a tiny model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama):
    from lmsweep.models import load_for_inference, load_tokenizer

    return load_for_inference(str(tiny_llama), None, "cpu"), load_tokenizer(str(tiny_llama), padding_side="left")


GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 8}
SAMPLING = {"do_sample": True, "top_k": 50, "temperature": 1.0, "num_beams": 1, "max_new_tokens": 8}


def test_greedy_output_does_not_depend_on_the_batch_size(model_and_tokenizer, demo_records):
    from lmsweep.prompts import format_prompt

    model, tokenizer = model_and_tokenizer
    records = demo_records[:8]
    lengths = {len(tokenizer(format_prompt(r))["input_ids"]) for r in records}
    assert len(lengths) > 1, "prompts of one length would not exercise the padding"
    one = generate(model, tokenizer, records, GREEDY, batch_size=1, seed=0, log=pytest.fail)
    four = generate(model, tokenizer, records, GREEDY, batch_size=4, seed=0, log=pytest.fail)
    assert len(one) == len(records) and all(isinstance(p, str) for p in one)
    assert one == four
    assert tokenizer.padding_side == "left"


def test_generate_pads_on_the_left_even_if_the_tokenizer_says_right(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    records = demo_records[:4]
    expected = generate(model, tokenizer, records, GREEDY, batch_size=1, seed=0)
    tokenizer.padding_side = "right"
    try:
        assert generate(model, tokenizer, records, GREEDY, batch_size=4, seed=0) == expected
    finally:
        tokenizer.padding_side = "left"


def test_sampling_is_reproducible_for_a_seed_and_moves_with_it(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    records = demo_records[:12]
    first = generate(model, tokenizer, records, SAMPLING, batch_size=4, seed=7)
    again = generate(model, tokenizer, records, SAMPLING, batch_size=4, seed=7)
    other = generate(model, tokenizer, records, SAMPLING, batch_size=4, seed=8)
    assert len(first) == len(records)
    assert first == again
    # A near-uniform random model over 300 tokens: 12 x 8 sampled tokens cannot all repeat by chance.
    assert sum(a != b for a, b in zip(first, other)) >= len(records) // 2


def test_generate_survives_oom_with_the_same_predictions(model_and_tokenizer, demo_records, monkeypatch):
    """The batch halved on OOM is seeded from its first example, so sampling gives what batch size 2 gives."""
    model, tokenizer = model_and_tokenizer
    records = demo_records[:4]
    expected = generate(model, tokenizer, records, SAMPLING, batch_size=2, seed=3)
    real = model.generate

    def small_memory(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", small_memory)
    logged = []
    assert generate(model, tokenizer, records, SAMPLING, batch_size=4, seed=3, log=logged.append) == expected
    assert logged == ["out of memory on a batch of 4: retrying with batch size 2"]
