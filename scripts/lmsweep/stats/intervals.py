"""A number of one run and its bootstrap interval over test examples (mean metrics and perplexities)."""

from __future__ import annotations

import math

import numpy as np

from lmsweep.stats import base


def mean_interval(values, *, confidence_level: float = base.CONFIDENCE, n_resamples: int = 9999,
                  seed: int = base.SEED) -> base.Interval:
    """Mean of per-example scores (ROUGE-L, BERTScore, sentence BLEU) and its bootstrap interval."""
    x = base.values(values, "values")
    point = float(np.mean(x))
    low, high, method = base.bootstrap((x,), lambda v, axis: np.mean(v, axis=axis), point,
                                       n_resamples, seed, confidence_level)
    return base.Interval(point, low, high, method, n_resamples, seed, len(x), confidence_level)


def perplexity_ratio(nll, tokens, axis=-1):
    """exp(sum NLL / sum tokens) (or words: word perplexity)."""
    return np.exp(np.sum(nll, axis=axis) / np.sum(tokens, axis=axis))


def bits_per_byte_ratio(nll, n_bytes, axis=-1):
    """As lm-evaluation-harness: summed NLL (nats) over summed bytes, in bits."""
    return np.sum(nll, axis=axis) / (np.sum(n_bytes, axis=axis) * math.log(2))


def _ratio_interval(ratio, nll, counts, count_name, confidence_level, n_resamples, seed) -> base.Interval:
    nll = base.values(nll, "nll", nonnegative=True)
    counts = base.denominator(counts, count_name)
    n = base.aligned(nll=nll, **{count_name: counts})
    point = float(ratio(nll, counts))
    low, high, method = base.bootstrap((nll, counts), ratio, point, n_resamples, seed, confidence_level)
    return base.Interval(point, low, high, method, n_resamples, seed, n, confidence_level)


def perplexity_interval(nll, tokens, *, confidence_level: float = base.CONFIDENCE, n_resamples: int = 9999,
                        seed: int = base.SEED) -> base.Interval:
    """Token perplexity exp(sum NLL / sum tokens) and its interval: examples resampled, the ratio recomputed."""
    return _ratio_interval(perplexity_ratio, nll, tokens, "tokens", confidence_level, n_resamples, seed)


def bits_per_byte_interval(nll, n_bytes, *, confidence_level: float = base.CONFIDENCE, n_resamples: int = 9999,
                           seed: int = base.SEED) -> base.Interval:
    """Bits per byte sum NLL / (sum bytes * ln 2) and its interval: examples resampled, the ratio recomputed."""
    return _ratio_interval(bits_per_byte_ratio, nll, n_bytes, "n_bytes", confidence_level, n_resamples, seed)
