"""Perplexity of the reference answers: answer tokens only, padding-proof; EOS in token perplexity only."""

import math
import re

import pytest

from lmsweep.answer_nll import (
    answer_nll, bits_per_byte, count_words, encode, perplexity, word_perplexity,
)
from lmsweep.prompts import Prompter, common_prefix_length, format_prompt


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama):
    from lmsweep.models import load_for_inference, load_tokenizer

    return load_for_inference(str(tiny_llama), None, "cpu"), load_tokenizer(str(tiny_llama))


@pytest.fixture(scope="module")
def records(demo_records):
    return demo_records[:7]


def hand_nll(model, tokenizer, record):
    """(-log p of the answer tokens with the EOS, their count, -log p without the EOS), one unpadded example."""
    import torch

    encoded = encode(Prompter("alpaca", tokenizer), record)
    ids, n_prompt = encoded.ids, encoded.n_prompt
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    # Token j is predicted by the logits at position j - 1.
    per_token = [-logprobs[j - 1, ids[j]].item() for j in range(n_prompt, len(ids))]
    return sum(per_token), len(per_token), sum(per_token[:-1])


def lm_eval_style_nll(model, tokenizer, record):
    """The answer's log-likelihood as lm-evaluation-harness computes a continuation's (its own code here):
    context and context + continuation tokenized whole, the continuation's tokens the ones after the
    context's, summed log-softmax, no EOS. (lm-evaluation-harness also moves a context's trailing
    whitespace into the continuation; lmsweep's prompt ends in the newline the model was trained to answer
    after, a prompt token, so it stays in the context here as in training.)"""
    import torch

    context = format_prompt(record)
    context_ids = tokenizer(context)["input_ids"]
    whole = tokenizer(context + record["output"])["input_ids"]
    continuation = whole[len(context_ids):]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].double(), dim=-1)
    return -sum(logprobs[len(context_ids) + k - 1, token].item() for k, token in enumerate(continuation))


def test_encode_splits_prompt_and_answer(model_and_tokenizer, records):
    _, tokenizer = model_and_tokenizer
    for record in records:
        encoded = encode(Prompter("alpaca", tokenizer), record)
        ids, n_prompt = encoded.ids, encoded.n_prompt
        assert encoded.cut == 0 and encoded.n_own == len(encoded.ids) - 1 and encoded.scored_text == record["output"]
        prompt_ids = tokenizer(format_prompt(record))["input_ids"]
        assert ids[:n_prompt] == prompt_ids  # the whole prompt is a prefix
        assert n_prompt == len(prompt_ids)
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids[n_prompt:]) == record["output"] + tokenizer.eos_token


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([9], [1]) == 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_answer_nll_matches_a_hand_computation(model_and_tokenizer, records, batch_size):
    model, tokenizer = model_and_tokenizer
    lengths = {len(encode(Prompter("alpaca", tokenizer), r).ids) for r in records[:3]}
    assert len(lengths) > 1, "the first batch must need padding for this test to mean anything"
    result = answer_nll(model, Prompter("alpaca", tokenizer), records, batch_size=batch_size)
    assert len(result) == len(records)
    for record, got in zip(records, result):
        nll, tokens, nll_text = hand_nll(model, tokenizer, record)
        assert got.tokens == tokens
        assert got.nll == pytest.approx(nll, abs=1e-4)
        assert got.nll_text == pytest.approx(nll_text, abs=1e-4)
        assert got.nll_text < got.nll  # the EOS's loss is in token perplexity only
        assert got.bytes == len(record["output"].encode("utf-8")) and got.bytes_cut == 0
        assert got.words == count_words(record["output"])


def test_bits_per_byte_and_word_perplexity_are_lm_evaluation_harness_s_on_a_llama_2_layout(llama2_layout, demo_records):
    """On a folder laid out as Llama-2's (BOS prepended, no pad token): lmsweep's per-example NLL of the
    answer's own tokens equals lm-evaluation-harness's continuation log-likelihood, computed here by its
    own method, and the corpus numbers are that over UTF-8 bytes and whitespace words."""
    from lmsweep.models import load_for_inference, load_tokenizer

    model = load_for_inference(str(llama2_layout), None, "cpu")
    tokenizer = load_tokenizer(str(llama2_layout))
    records = demo_records[10:22]
    got = answer_nll(model, Prompter("alpaca", tokenizer), records, batch_size=5)
    expected = [lm_eval_style_nll(model, tokenizer, r) for r in records]
    assert [g.nll_text for g in got] == pytest.approx(expected, rel=1e-5)
    n_bytes = sum(len(r["output"].encode("utf-8")) for r in records)
    n_words = sum(len(re.split(r"\s+", r["output"])) for r in records)
    assert bits_per_byte([g.nll_text for g in got], [g.bytes for g in got]) == pytest.approx(
        sum(expected) / n_bytes / math.log(2), rel=1e-5)
    assert word_perplexity([g.nll_text for g in got], [g.words for g in got]) == pytest.approx(
        math.exp(sum(expected) / n_words), rel=1e-5)
    # Token perplexity keeps the EOS (the number training minimises): one more token, one more loss.
    assert all(g.tokens == len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) + 1
               for g, r in zip(got, records))


def test_perplexity_of_a_model_is_token_weighted(model_and_tokenizer, records):
    model, tokenizer = model_and_tokenizer
    per_example = answer_nll(model, Prompter("alpaca", tokenizer), records, batch_size=4)
    nll, tokens = [r.nll for r in per_example], [r.tokens for r in per_example]
    expected = math.exp(sum(nll) / sum(tokens))
    assert perplexity(nll, tokens) == pytest.approx(expected, rel=1e-12)
    # A random model over a 300-token vocabulary: close to uniform, so of the order of the vocabulary size.
    assert 30 < perplexity(nll, tokens) < 3000


def test_perplexity_is_exp_of_total_nll_over_total_tokens():
    nll, tokens = [2.0, 1.0], [1, 3]
    assert perplexity(nll, tokens) == pytest.approx(math.exp(3.0 / 4.0))
    # not the mean of per-example perplexities
    assert perplexity(nll, tokens) != pytest.approx((math.exp(2.0) + math.exp(1.0 / 3.0)) / 2)


def test_bits_per_byte_and_word_perplexity_are_lm_eval_harness_ratios():
    nll, n_bytes, words = [2.0, 1.0], [3, 5], [1, 2]
    assert bits_per_byte(nll, n_bytes) == pytest.approx(3.0 / 8 / math.log(2))
    assert word_perplexity(nll, words) == pytest.approx(math.exp(3.0 / 3))
    # lm-evaluation-harness's count_words: a split on whitespace runs (a leading space gives an empty word)
    assert count_words("two  words") == 2 and count_words(" a b") == 3


def test_results_come_back_in_record_order_whatever_the_batching(model_and_tokenizer, records):
    model, tokenizer = model_and_tokenizer
    forward = answer_nll(model, Prompter("alpaca", tokenizer), records, batch_size=3)
    backward = answer_nll(model, Prompter("alpaca", tokenizer), list(reversed(records)), batch_size=2)
    for a, b in zip(forward, reversed(backward)):
        assert a.tokens == b.tokens and a.nll == pytest.approx(b.nll, abs=1e-4)


def test_an_example_longer_than_the_context_loses_prompt_tokens_first(model_and_tokenizer, records):
    _, tokenizer = model_and_tokenizer
    record = {**records[0], "input": "word " * 300}
    full = encode(Prompter("alpaca", tokenizer), record)
    cut = encode(Prompter("alpaca", tokenizer), record, max_tokens=64)
    assert len(cut.ids) == 64 and cut.prompt_tokens_cut == len(full.ids) - 64 and cut.answer_tokens_cut == 0
    assert cut.ids[0] == full.ids[0]  # BOS kept
    assert cut.ids[cut.n_prompt:] == full.ids[full.n_prompt:]  # the whole answer, EOS included
    assert cut.n_prompt == full.n_prompt - cut.prompt_tokens_cut
    assert cut.n_own == len(cut.ids) - 1 and cut.scored_text == record["output"]


def test_an_answer_longer_than_the_context_counts_only_the_bytes_and_words_it_scored(model_and_tokenizer, records):
    """Issue 18: one 15 KB answer moved corpus bits per byte from 1.74 to 0.40, its tail dropped from the
    NLL but its bytes counted in full. Only the scored text counts now, so the corpus number barely moves."""
    model, tokenizer = model_and_tokenizer
    long_answer = " ".join(["the capital of France is Paris and the words are sorted"] * 300)  # ~17 KB
    long = {**records[1], "id": 999, "output": long_answer}
    encoded = encode(Prompter("alpaca", tokenizer), long, max_tokens=256)
    assert len(encoded.ids) == 256 and encoded.answer_tokens_cut > 1 and encoded.n_own == len(encoded.ids)
    assert long_answer.startswith(encoded.scored_text) and 0 < len(encoded.scored_text) < len(long_answer)
    # the scored text is what the kept answer tokens spell
    assert tokenizer.decode(encoded.ids[encoded.n_prompt:]) == encoded.scored_text

    plain = answer_nll(model, Prompter("alpaca", tokenizer), records, batch_size=4, max_tokens=256)
    both = answer_nll(model, Prompter("alpaca", tokenizer), records + [long], batch_size=4, max_tokens=256)
    scored = both[-1]
    assert scored.bytes == len(encoded.scored_text.encode()) and scored.bytes_cut == len(long_answer) - scored.bytes
    assert scored.tokens == len(encoded.ids) - encoded.n_prompt and scored.nll_text == pytest.approx(scored.nll)
    before = bits_per_byte([r.nll_text for r in plain], [r.bytes for r in plain])
    after = bits_per_byte([r.nll_text for r in both], [r.bytes for r in both])
    full_bytes = bits_per_byte([r.nll_text for r in both], [r.bytes + r.bytes_cut for r in both])
    assert after == pytest.approx(before, rel=0.5)  # a random model scores every text alike, roughly
    assert full_bytes < before / 5  # what counting the cut bytes did


def test_the_step_writes_the_corpus_numbers_of_its_per_example_table(tiny_llama, demo_records, cpu_load, tmp_path):
    """Rule perplexity's step: the summary's three numbers are those of the per-example table beside it."""
    import pandas as pd

    from lmsweep.io import write_jsonl
    from lmsweep.records import PerplexitySummary
    from lmsweep.steps import perplexity as step

    write_jsonl(tmp_path / "test.jsonl", demo_records[:9])
    settings = step.Settings(model="tiny", variant="base", base_model=str(tiny_llama), load=cpu_load(),
                             batch_size=4, seed=3, device="cpu")
    paths = step.Paths(test=str(tmp_path / "test.jsonl"), base=str(tiny_llama), adapter=[],
                       summary=str(tmp_path / "base.json"), per_example=str(tmp_path / "base.per_example.csv"))
    returned = step.run(settings, paths)
    summary = PerplexitySummary.load(paths.summary)
    table = pd.read_csv(paths.per_example)
    assert summary == returned and summary.n_examples == len(table) == 9
    assert summary.perplexity == pytest.approx(perplexity(table.nll, table.tokens))
    assert summary.bits_per_byte == pytest.approx(bits_per_byte(table.nll_text, table.bytes))
    assert summary.word_perplexity == pytest.approx(word_perplexity(table.nll_text, table.words))
    assert summary.adapter is None and summary.inference.startswith("as trained")
    assert summary.answer_bytes == sum(len(r["output"].encode()) for r in demo_records[:9])
