"""Agreement between metrics, spread across seeds, and the hygiene of answers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lmsweep.stats import base


@dataclass(frozen=True)
class Correlation:
    """Rank agreement of two metrics across runs; rho and p are NaN when `reason` says why."""

    method: str
    rho: float
    p_value: float
    n: int
    reason: str = ""


@dataclass(frozen=True)
class Spread:
    """One setting run under several seeds; std is the sample std (ddof=1), NaN for one seed."""

    mean: float
    std: float
    min: float
    max: float
    n_seeds: int


def rank_correlation(x, y, method: str = "spearman") -> Correlation:
    """Spearman's rho or Kendall's tau-b (ties averaged) of two metrics across runs, pairs with a NaN dropped."""
    from scipy import stats

    functions = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}
    if method not in functions:
        raise ValueError(f"method is {method!r}; use 'spearman' or 'kendall'")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    base.aligned(x=x, y=y)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    reason = ""
    if n < 3:
        reason = f"{n} runs with both metrics; a rank correlation needs at least 3"
    elif np.ptp(x) == 0 or np.ptp(y) == 0:
        reason = f"{'x' if np.ptp(x) == 0 else 'y'} has the same value on every run; ranks are undefined"
    if reason:
        return Correlation(method, math.nan, math.nan, n, reason)
    result = functions[method](x, y)
    return Correlation(method, float(result.statistic), float(result.pvalue), n)


def replicate_spread(values_by_seed: Mapping[int, float] | Sequence[float]) -> Spread:
    """Mean, sample std, min and max of one metric over runs that differ only in their seed."""
    items = values_by_seed.items() if isinstance(values_by_seed, Mapping) else enumerate(values_by_seed)
    values = []
    for seed, value in items:
        if not math.isfinite(float(value)):
            raise ValueError(f"seed {seed}: value is {value}; pass the finite metric of each seed's run")
        values.append(float(value))
    if not values:
        raise ValueError("values_by_seed is empty; pass the metric of at least one seed's run")
    x = np.asarray(values)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    return Spread(float(np.mean(x)), std, float(np.min(x)), float(np.max(x)), len(x))


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Share of a prediction's word n-grams (whitespace tokens) that repeat an earlier one in it; 0 if none."""
    if n < 1:
        raise ValueError(f"n is {n}; use an n-gram length of 1 or more (3 is usual)")
    tokens = text.split()
    ngrams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not ngrams:
        return 0.0
    return 1.0 - len(set(ngrams)) / len(ngrams)


def is_empty(text: str) -> bool:
    """A prediction with nothing but whitespace (what BERTScore scores 0 in lmsweep.metrics)."""
    return not text.strip()
