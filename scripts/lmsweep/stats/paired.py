"""A against B on the same test examples: the difference B - A, its interval, and a p-value.

The interval is a paired bootstrap (examples resampled, A and B together).
The p-value comes from the sign-flip test of lmsweep.stats.signflip wherever
the statistic is a sum of per-example differences: means of per-example
scores, and perplexities whose A and B count the same tokens, bytes or words
per example (two variants of one model; bits per byte and word perplexity of
any two models, which score the same reference texts). There it is exact for
small n and the t-test's for large n, and no number of resamples bounds it.
Only ratios whose denominators differ between A and B (an example cut at one
model's context and not at the other's) keep scipy's Monte-Carlo swap
permutation test, whose p-value is at least 1/(R + 1).
"""

from __future__ import annotations

import numpy as np

from lmsweep.stats import base
from lmsweep.stats.intervals import bits_per_byte_ratio, perplexity_ratio
from lmsweep.stats.signflip import sign_flip_test


def _permutation_p(data: tuple, statistic, n_resamples: int, seed: int) -> float:
    """Two-sided paired permutation test: swap A and B within each example (a sign flip of the difference).

    Exact, over all 2**n swaps, when that is no more than n_resamples.
    """
    from scipy.stats import permutation_test

    result = permutation_test(data, statistic, permutation_type="samples", vectorized=True,
                              n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def paired_mean(a, b, *, confidence_level: float = base.CONFIDENCE, n_resamples: int = 9999,
                seed: int = base.SEED) -> base.Paired:
    """Mean of B's per-example scores minus A's: paired bootstrap interval, sign-flip test p-value."""
    a, b = base.values(a, "a"), base.values(b, "b")
    n = base.aligned(a=a, b=b)
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    if np.array_equal(a, b):
        return base.identical(mean_a, mean_b, "sign-flip test", n_resamples, seed, n, confidence_level)

    def difference(x, y, axis):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    point = mean_b - mean_a
    low, high, method = base.bootstrap((a, b), difference, point, n_resamples, seed, confidence_level)
    p, test = sign_flip_test(b - a)
    return base.Paired(mean_a, mean_b, point, low, high, p, False, test, n_resamples, seed, n, confidence_level,
                       {"interval": method})


def _paired_ratio(ratio, label: str, nll_a, counts_a, nll_b, counts_b, count_name, confidence_level, n_resamples,
                  seed) -> base.Paired:
    nll_a, nll_b = base.values(nll_a, "nll_a", nonnegative=True), base.values(nll_b, "nll_b", nonnegative=True)
    counts_a = base.denominator(counts_a, f"{count_name}_a")
    counts_b = base.denominator(counts_b, f"{count_name}_b")
    n = base.aligned(nll_a=nll_a, nll_b=nll_b, **{f"{count_name}_a": counts_a, f"{count_name}_b": counts_b})
    value_a, value_b = float(ratio(nll_a, counts_a)), float(ratio(nll_b, counts_b))
    same_counts = np.array_equal(counts_a, counts_b)
    if same_counts and np.array_equal(nll_a, nll_b):
        return base.identical(value_a, value_b, "sign-flip test", n_resamples, seed, n, confidence_level)

    def difference(na, ca, nb, cb, axis):
        return ratio(nb, cb, axis=axis) - ratio(na, ca, axis=axis)

    point = value_b - value_a
    low, high, method = base.bootstrap((nll_a, counts_a, nll_b, counts_b), difference, point,
                                       n_resamples, seed, confidence_level)
    details = {"interval": f"{method}, of the {label} difference"}
    if same_counts:
        # One denominator for A and B under every swap: the difference moves with the sum of the per-example
        # NLL differences alone, and swapping an example's A and B flips the sign of its difference.
        p, test = sign_flip_test(nll_b - nll_a)
        return base.Paired(value_a, value_b, point, low, high, p, False, f"{test} of the NLL", n_resamples, seed, n,
                           confidence_level, details)
    # The permutation test swaps an example's (NLL, count) pair between A and B. scipy permutes
    # single values, so it permutes indices into the pooled arrays: A's example i is i, B's is n + i.
    pooled_nll, pooled_counts = np.concatenate([nll_a, nll_b]), np.concatenate([counts_a, counts_b])

    def swapped_difference(index_a, index_b, axis):
        ia, ib = index_a.astype(np.int64), index_b.astype(np.int64)
        return (ratio(pooled_nll[ib], pooled_counts[ib], axis=axis)
                - ratio(pooled_nll[ia], pooled_counts[ia], axis=axis))

    p = _permutation_p((np.arange(n), np.arange(n, 2 * n)), swapped_difference, n_resamples, seed)
    exact = 2**n <= n_resamples
    test = "swap permutation test (scipy" + (", exact)" if exact else ", Monte Carlo)")
    return base.Paired(value_a, value_b, point, low, high, p, False, test, n_resamples, seed, n, confidence_level,
                       details, p_resamples=0 if exact else n_resamples)


def paired_perplexity(nll_a, tokens_a, nll_b, tokens_b, *, confidence_level: float = base.CONFIDENCE,
                      n_resamples: int = 9999, seed: int = base.SEED) -> base.Paired:
    """Token perplexity of B minus A on the same examples (comparable only under one tokenizer), or word
    perplexity with words as the counts."""
    return _paired_ratio(perplexity_ratio, "perplexity", nll_a, tokens_a, nll_b, tokens_b, "tokens",
                         confidence_level, n_resamples, seed)


def paired_bits_per_byte(nll_a, bytes_a, nll_b, bytes_b, *, confidence_level: float = base.CONFIDENCE,
                         n_resamples: int = 9999, seed: int = base.SEED) -> base.Paired:
    """Bits per byte of B minus A on the same examples (comparable across tokenizers)."""
    return _paired_ratio(bits_per_byte_ratio, "bits per byte", nll_a, bytes_a, nll_b, bytes_b, "bytes",
                         confidence_level, n_resamples, seed)
