"""Per-example sampling draws from exactly the distribution transformers' own sampling draws from."""


import pytest
import torch

from lmsweep.sampling import PerExampleSampler, example_seed, per_example_possible


def draws(config, logits, n, seed=0):
    """n draws of the next token for one row of `logits`, each from a fresh example stream."""
    sampler = PerExampleSampler(config)
    counts = torch.zeros(logits.shape[-1])
    batch = 50
    for start in range(0, n, batch):
        sampler.start([example_seed(seed, 0, i) for i in range(start, start + batch)], "cpu")
        out = sampler(torch.zeros(batch, 1, dtype=torch.long), logits.repeat(batch, 1))
        assert ((out == 0).sum(dim=1) == 1).all() and torch.isinf(out).sum() == batch * (logits.shape[-1] - 1)
        counts += torch.bincount(out.argmax(dim=1), minlength=logits.shape[-1])
    return counts


def library_probs(config, logits):
    """What transformers' _sample would sample from: its own warpers, then softmax."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = logits.clone()[None]
    if config.temperature != 1.0:
        scores = TemperatureLogitsWarper(config.temperature)(None, scores)
    if config.top_k:
        scores = TopKLogitsWarper(config.top_k)(None, scores)
    if config.top_p < 1.0:
        scores = TopPLogitsWarper(config.top_p)(None, scores)
    return torch.softmax(scores, dim=-1)[0]


@pytest.mark.parametrize("settings", [
    {"temperature": 1.0, "top_k": 50, "top_p": 1.0},
    {"temperature": 0.5, "top_k": 4, "top_p": 1.0},
    {"temperature": 0.8, "top_k": 50, "top_p": 0.7},
])
def test_the_frequencies_match_the_librarys_distribution(settings):
    from scipy.stats import chisquare
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=True, num_beams=1, **settings)
    logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])
    n = 4000
    counts = draws(config, logits, n)
    probs = library_probs(config, logits)
    support = probs > 0
    assert counts[~support].sum() == 0, "a token the warpers removed was drawn"
    result = chisquare(counts[support].numpy(), n * probs[support].numpy())
    assert result.pvalue > 1e-3, (counts, n * probs)


def test_streams_depend_on_seed_replicate_and_example():
    seeds = {example_seed(s, r, i) for s in (1, 2) for r in (0, 1) for i in (1, 2, 3)}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)
    assert example_seed(1, 0, 5) == example_seed(1, 0, 5)


def test_only_plain_sampling_uses_per_example_streams():
    from transformers import GenerationConfig

    assert per_example_possible(GenerationConfig(do_sample=True, num_beams=1, top_k=50))
    assert not per_example_possible(GenerationConfig(do_sample=True, num_beams=2))
    assert not per_example_possible(GenerationConfig(do_sample=False, num_beams=1))
    # A warper lmsweep does not apply itself (a model's own default, opted in): the library samples.
    assert not per_example_possible(GenerationConfig(do_sample=True, num_beams=1, min_p=0.1))
    assert not per_example_possible(GenerationConfig(do_sample=True, num_beams=1, typical_p=0.5))


def test_a_mismatch_of_streams_and_rows_is_an_error():
    from transformers import GenerationConfig

    sampler = PerExampleSampler(GenerationConfig(do_sample=True))
    sampler.start([1, 2], "cpu")
    with pytest.raises(RuntimeError, match="2 streams for 3 rows"):
        sampler(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 5))


def test_the_streams_are_uniform_and_unrelated_across_rows_and_steps():
    import numpy as np
    from scipy.stats import kstest

    from lmsweep.sampling import mix32, uniforms

    keys = mix32(torch.arange(1, 65, dtype=torch.int64))
    first, second = uniforms(keys, 0, 2000, "cpu"), uniforms(keys, 1, 2000, "cpu")
    assert ((first > 0) & (first < 1)).all()
    assert kstest(first.flatten().numpy(), "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(first.flatten(), second.flatten())[0, 1]) < 0.01
    assert abs(np.corrcoef(first[0], first[1])[0, 1]) < 0.1


def test_every_hash_gives_a_uniform_strictly_inside_0_1_and_a_finite_gumbel():
    """Every 32-bit hash value the stream can produce: the kept bits exhaustively, the dropped bits at both ends."""
    from lmsweep.sampling import UNIFORM_BITS, gumbel, to_uniform

    kept = torch.arange(1 << UNIFORM_BITS, dtype=torch.int64) << (32 - UNIFORM_BITS)
    for low in (0, (1 << (32 - UNIFORM_BITS)) - 1):
        u = to_uniform(kept | low)
        assert u.dtype == torch.float32
        assert (u > 0).all() and (u < 1).all()
        assert torch.isfinite(gumbel(u)).all()
        assert len(torch.unique(u)) == 1 << UNIFORM_BITS  # no two kept values round together
    extremes = to_uniform(torch.tensor([0, 2**32 - 1], dtype=torch.int64))
    assert extremes[0] == 2.0**-24 and extremes[1] == 1 - 2.0**-24


# Tokens that may be drawn carry logits from -3 to 2; every other token sits at -60, finite, so that
# transformers' temperature warper keeps it in the support with a probability below 1e-25: a draw of one
# of them is a draw from outside the distribution (with u = 1.0, the old sampler drew any token).
LIVE = 40


def _logits(vocab: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.full((vocab,), -60.0)
    live = torch.randperm(vocab, generator=generator)[:LIVE]
    live[0] = vocab - 1  # the last token id too, where an off-by-one would show
    logits[live] = torch.linspace(2.0, -3.0, LIVE)
    return logits


@pytest.mark.parametrize("vocab, settings", [
    (1024, {"temperature": 1.0, "top_k": 10, "top_p": 1.0}),
    (1024, {"temperature": 1.0, "top_k": 0, "top_p": 0.8}),
    (1024, {"temperature": 0.5, "top_k": 0, "top_p": 1.0}),
    (32000, {"temperature": 1.0, "top_k": 10, "top_p": 1.0}),
    (51200, {"temperature": 0.8, "top_k": 0, "top_p": 0.9}),
    (65536, {"temperature": 0.7, "top_k": 0, "top_p": 1.0}),
])
def test_no_draw_falls_outside_the_warped_support_and_the_frequencies_are_the_librarys(vocab, settings):
    """Many draws at vocabulary sizes of real models (Llama-2's 32,000, Phi-2's 51,200, and above): zero
    tokens outside what transformers' own warpers keep, and a chi-square against their distribution."""
    from scipy.stats import chisquare
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=True, num_beams=1, **settings)
    logits = _logits(vocab, seed=vocab)
    n = 4000
    counts = draws(config, logits, n, seed=vocab)
    probs = library_probs(config, logits)
    support = probs > 1e-12
    assert counts.sum() == n
    assert counts[~support].sum() == 0, f"{int(counts[~support].sum())} draws outside the support"
    expected = n * probs[support].double()
    observed = counts[support].double()
    # Categories expected fewer than 5 times are pooled, as a chi-square asks.
    small = expected < 5
    if small.any():
        observed = torch.cat([observed[~small], observed[small].sum().reshape(1)])
        expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    expected *= observed.sum() / expected.sum()
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3
