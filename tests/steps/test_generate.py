"""Batched generation: OOM back-off, order, left padding and seeding."""

import pytest
import torch

from lmsweep.batching import run_batches
from lmsweep.generation import generate
from lmsweep.prompts import Prompter


def oom_above_two(calls):
    def fn(batch):
        calls.append(list(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    return fn


def test_run_batches_halves_the_batch_on_oom_and_keeps_order(lmsweep_log):
    calls = []
    items = list(range(11))
    out = run_batches(items, 8, oom_above_two(calls))
    logged = lmsweep_log()
    assert out == [x * 10 for x in items]
    assert [len(c) for c in calls] == [8, 4, 2, 2, 2, 2, 2, 1]
    assert logged == [
        "out of memory on a batch of 8: retrying with batch size 4",
        "out of memory on a batch of 4: retrying with batch size 2",
    ]


def test_run_batches_without_oom_calls_each_batch_once(lmsweep_log):
    calls = []
    assert run_batches(list(range(5)), 2, lambda b: calls.append(b) or b) == list(range(5))
    assert lmsweep_log() == []
    assert calls == [[0, 1], [2, 3], [4]]


def test_run_batches_reraises_other_errors():
    def fn(batch):
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        run_batches([1, 2, 3, 4], 4, fn)


def test_run_batches_reraises_oom_at_batch_size_one():
    calls = []

    def fn(batch):
        calls.append(len(batch))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.OutOfMemoryError):
        run_batches([1, 2, 3], 4, fn)
    assert calls == [3, 2, 1]  # batch sizes 4 (3 items left), 2, 1, then it gives up


def test_a_plain_runtime_error_saying_out_of_memory_counts_as_oom():
    """What the caching allocator raises on older torch: a RuntimeError, not torch.OutOfMemoryError."""
    calls = []

    def fn(batch):
        calls.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.35 GiB total capacity)")
        return batch

    assert run_batches([1, 2], 2, fn) == [1, 2]
    assert calls == [2, 1, 1]


def test_the_cpu_allocators_error_counts_as_oom():
    from lmsweep.batching import is_oom

    assert is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 1099626974161 bytes. Error code 12"))
    assert not is_oom(RuntimeError("shape mismatch"))


def test_oom_on_a_single_item_names_it():
    def fn(batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(MemoryError, match="out of memory on test record 17 alone"):
        run_batches([17], 4, fn, describe=lambda i: f"test record {i}")


# --- generate() with a tiny model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama):
    from lmsweep.models import load_for_inference, load_tokenizer

    return load_for_inference(str(tiny_llama), None, "cpu"), load_tokenizer(str(tiny_llama), padding_side="left")


GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 8}
SAMPLING = {"do_sample": True, "top_k": 50, "temperature": 1.0, "num_beams": 1, "max_new_tokens": 8}


def texts(results):
    return [r["prediction"] for r in results]


def test_greedy_output_does_not_depend_on_the_batch_size(model_and_tokenizer, demo_records):
    from lmsweep.prompts import format_prompt

    model, tokenizer = model_and_tokenizer
    records = demo_records[:8]
    lengths = {len(tokenizer(format_prompt(r))["input_ids"]) for r in records}
    assert len(lengths) > 1, "prompts of one length would not exercise the padding"
    one = generate(model, Prompter("alpaca", tokenizer), records, GREEDY, batch_size=1, seed=0)
    four = generate(model, Prompter("alpaca", tokenizer), records, GREEDY, batch_size=4, seed=0)
    assert len(one) == len(records) and all(isinstance(p, str) for p in texts(one))
    assert texts(one) == texts(four)
    assert {r["batch_size"] for r in one} == {1} and {r["batch_size"] for r in four} == {4}
    assert tokenizer.padding_side == "left"


def test_generate_pads_on_the_left_even_if_the_tokenizer_says_right(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    records = demo_records[:4]
    expected = texts(generate(model, Prompter("alpaca", tokenizer), records, GREEDY, batch_size=1, seed=0))
    tokenizer.padding_side = "right"
    try:
        assert texts(generate(model, Prompter("alpaca", tokenizer), records, GREEDY, batch_size=4, seed=0)) == expected
    finally:
        tokenizer.padding_side = "left"


def test_sampling_is_reproducible_for_a_seed_and_moves_with_it(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    records = demo_records[:12]
    first = texts(generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=7))
    again = texts(generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=7))
    other = texts(generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=8))
    replicate = texts(generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=7, replicate=1))
    assert len(first) == len(records)
    assert first == again
    # A near-uniform random model over 300 tokens: 12 x 8 sampled tokens cannot all repeat by chance.
    assert sum(a != b for a, b in zip(first, other)) >= len(records) // 2
    assert sum(a != b for a, b in zip(first, replicate)) >= len(records) // 2


def test_a_sampled_answer_does_not_depend_on_its_batch(model_and_tokenizer, demo_records):
    """Each example draws from its own stream: batch size, batch mates and order change nothing."""
    model, tokenizer = model_and_tokenizer
    records = demo_records[:12]
    alone = generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=1, seed=5)
    together = generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=12, seed=5)
    shuffled = list(reversed(records[3:]))
    subset = generate(model, Prompter("alpaca", tokenizer), shuffled, SAMPLING, batch_size=5, seed=5)
    assert texts(alone) == texts(together)
    assert texts(subset) == list(reversed(texts(alone)[3:]))
    assert {r["sampling"] for r in alone} == {"per-example"}


def test_beam_sampling_is_marked_per_batch(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    results = generate(model, Prompter("alpaca", tokenizer), demo_records[:4], {**SAMPLING, "num_beams": 2}, batch_size=4, seed=1)
    assert {r["sampling"] for r in results} == {"per-batch"}
    greedy = generate(model, Prompter("alpaca", tokenizer), demo_records[:2], GREEDY, batch_size=2, seed=1)
    assert {r["sampling"] for r in greedy} == {"none"}


def test_generate_survives_oom_with_the_same_predictions(model_and_tokenizer, demo_records, monkeypatch, lmsweep_log):
    """A batch halved on out-of-memory samples what it would have sampled: the streams are per example."""
    model, tokenizer = model_and_tokenizer
    records = demo_records[:4]
    expected = texts(generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=3))
    real = model.generate

    def small_memory(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", small_memory)
    results = generate(model, Prompter("alpaca", tokenizer), records, SAMPLING, batch_size=4, seed=3)
    logged = lmsweep_log("WARNING")
    assert texts(results) == expected
    assert logged[0] == "out of memory on a batch of 4: retrying with batch size 2"
    assert {r["batch_size"] for r in results} == {2}


def test_answers_that_stop_at_max_new_tokens_are_counted(model_and_tokenizer, demo_records):
    model, tokenizer = model_and_tokenizer
    # A random model rarely emits EOS: with 3 new tokens nearly every answer is cut there.
    results = generate(model, Prompter("alpaca", tokenizer), demo_records[:6], {**GREEDY, "max_new_tokens": 3}, batch_size=6, seed=0)
    for r in results:
        assert r["new_tokens"] <= 3
        assert r["hit_max_new_tokens"] == (r["new_tokens"] == 3)
    assert any(r["hit_max_new_tokens"] for r in results)


def test_a_prompt_longer_than_the_context_is_cut_and_counted(model_and_tokenizer, demo_records, lmsweep_log):
    model, tokenizer = model_and_tokenizer
    context = model.config.max_position_embeddings
    long = {**demo_records[0], "id": 999, "input": "word " * (2 * context)}
    results = generate(model, Prompter("alpaca", tokenizer), [long, demo_records[1]], GREEDY, batch_size=2, seed=0)
    logged = lmsweep_log()
    assert results[0]["prompt_tokens"] == context - GREEDY["max_new_tokens"]
    assert results[0]["prompt_tokens_cut"] > context
    assert results[1]["prompt_tokens_cut"] == 0
    assert any("1 of 2 prompts were longer than the model's context" in line for line in logged)


def test_max_new_tokens_beyond_the_context_is_refused(model_and_tokenizer, demo_records):
    from lmsweep.generation import GenerationSetupError

    model, tokenizer = model_and_tokenizer
    too_many = {**GREEDY, "max_new_tokens": model.config.max_position_embeddings}
    with pytest.raises(GenerationSetupError, match="lower decoding.*max_new_tokens below"):
        generate(model, Prompter("alpaca", tokenizer), demo_records[:1], too_many, batch_size=1, seed=0)


def test_the_generate_step_survives_a_5_mb_record_and_counts_it(tiny_llama, demo_records, tmp_path, cpu_load):
    """A huge test record is cut to the model's context, counted in the log and the info file: no crash."""
    from lmsweep.io import read_jsonl, write_jsonl
    from lmsweep.records import GenerationInfo
    from lmsweep.settings import Decoding, RunLabels
    from lmsweep.steps import generate as step

    huge = {**demo_records[0], "id": 5000, "input": "x" * 5_000_000}
    write_jsonl(tmp_path / "test.jsonl", [huge, demo_records[1]])
    settings = step.Settings(labels=RunLabels(model="tiny", variant="base", decoding="greedy", replicate=0),
                             base_model=str(tiny_llama), load=cpu_load(),
                             decoding=Decoding(settings=GREEDY, defaults="library", sweep=None), batch_size=2, seed=0,
                             device="cpu")
    paths = step.Paths(test=str(tmp_path / "test.jsonl"), base=str(tiny_llama), adapter=[],
                       predictions=str(tmp_path / "rep0.jsonl"), info=str(tmp_path / "rep0.info.json"))
    info = step.run(settings, paths)
    assert info.prompts_cut == 1 and info.n_examples == 2 and info.adapter is None
    rows = read_jsonl(paths.predictions)
    assert rows[0]["id"] == 5000 and rows[0]["prompt_tokens_cut"] > 1000
    assert GenerationInfo.load(paths.info) == info
    assert all(r["model"] == "tiny" and r["decoding"] == "greedy" for r in rows)


def test_free_memory_counts_what_the_allocator_holds_unused(monkeypatch):
    """The driver counts PyTorch's cached blocks as taken; the batch estimate must not (a second call in a
    process found 15 prompts at 8 beams where the first found 18, on an H200)."""
    from lmsweep.generation import free_memory

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 6 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    assert free_memory("cuda") == 14 * gib
