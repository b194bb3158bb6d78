"""Perplexity of the reference answers: answer tokens only, EOS included, padding-proof."""

import math

import pytest

from lmsweep.perplexity import (
    answer_nll, bits_per_byte, common_prefix_length, count_words, encode, perplexity, word_perplexity,
)
from lmsweep.prompts import format_prompt


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama):
    from lmsweep.models import load_for_inference, load_tokenizer

    return load_for_inference(str(tiny_llama), None, "cpu"), load_tokenizer(str(tiny_llama))


@pytest.fixture(scope="module")
def records(demo_records):
    return demo_records[:7]


def hand_nll(model, tokenizer, record):
    """Summed -log p of the answer tokens (EOS included), one unpadded example through the model."""
    import torch

    ids, n_prompt, _ = encode(tokenizer, record)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    # Token j is predicted by the logits at position j - 1.
    nll = -sum(logprobs[j - 1, ids[j]].item() for j in range(n_prompt, len(ids)))
    return nll, len(ids) - n_prompt


def test_encode_splits_prompt_and_answer(model_and_tokenizer, records):
    _, tokenizer = model_and_tokenizer
    for record in records:
        ids, n_prompt, cut = encode(tokenizer, record)
        assert cut == 0
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
    lengths = {len(encode(tokenizer, r)[0]) for r in records[:3]}
    assert len(lengths) > 1, "the first batch must need padding for this test to mean anything"
    result = answer_nll(model, tokenizer, records, batch_size=batch_size)
    assert len(result) == len(records)
    for record, (nll, tokens) in zip(records, result):
        expected_nll, expected_tokens = hand_nll(model, tokenizer, record)
        assert tokens == expected_tokens
        assert nll == pytest.approx(expected_nll, abs=1e-4)


def test_perplexity_of_a_model_is_token_weighted(model_and_tokenizer, records):
    model, tokenizer = model_and_tokenizer
    per_example = answer_nll(model, tokenizer, records, batch_size=4)
    expected = math.exp(sum(n for n, _ in per_example) / sum(t for _, t in per_example))
    assert perplexity(per_example) == pytest.approx(expected, rel=1e-12)
    # A random model over a 300-token vocabulary: close to uniform, so of the order of the vocabulary size.
    assert 30 < perplexity(per_example) < 3000


def test_perplexity_is_exp_of_total_nll_over_total_tokens():
    per_example = [(2.0, 1), (1.0, 3)]
    assert perplexity(per_example) == pytest.approx(math.exp(3.0 / 4.0))
    # not the mean of per-example perplexities
    assert perplexity(per_example) != pytest.approx((math.exp(2.0) + math.exp(1.0 / 3.0)) / 2)


def test_bits_per_byte_and_word_perplexity_are_lm_eval_harness_ratios():
    nll, n_bytes, words = [2.0, 1.0], [3, 5], [1, 2]
    assert bits_per_byte(nll, n_bytes) == pytest.approx(3.0 / 8 / math.log(2))
    assert word_perplexity(nll, words) == pytest.approx(math.exp(3.0 / 3))
    # lm-evaluation-harness's count_words: a split on whitespace runs (a leading space gives an empty word)
    assert count_words("two  words") == 2 and count_words(" a b") == 3


def test_results_come_back_in_record_order_whatever_the_batching(model_and_tokenizer, records):
    model, tokenizer = model_and_tokenizer
    forward = answer_nll(model, tokenizer, records, batch_size=3)
    backward = answer_nll(model, tokenizer, list(reversed(records)), batch_size=2)
    for (n1, t1), (n2, t2) in zip(forward, reversed(backward)):
        assert t1 == t2 and n1 == pytest.approx(n2, abs=1e-4)


def test_an_example_longer_than_the_context_loses_prompt_tokens_first(model_and_tokenizer, records):
    _, tokenizer = model_and_tokenizer
    record = {**records[0], "input": "word " * 300}
    full, n_prompt, _ = encode(tokenizer, record)
    ids, n_cut_prompt, cut = encode(tokenizer, record, max_tokens=64)
    assert len(ids) == 64 and cut == len(full) - 64
    assert ids[0] == full[0]  # BOS kept
    assert ids[n_cut_prompt:] == full[n_prompt:]  # the whole answer, EOS included
    assert n_cut_prompt == n_prompt - cut
