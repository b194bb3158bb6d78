"""What every statistic here returns, the checks on its inputs, and the bootstrap they share."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

# sacreBLEU's default seed (SACREBLEU_SEED), so that `sacrebleu --paired-bs` run
# without a seed set draws the same resamples as paired_bleu with the default.
SEED = 12345
CONFIDENCE = 0.95
# Elements per resampled array that scipy holds at once (bootstrap and jackknife
# batches): 200 examples x 9,999 resamples x 10 BLEU statistics would be 160 MB.
_BATCH_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class Interval:
    """A statistic of one run and its confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    method: str
    n_resamples: int
    seed: int
    n: int
    confidence_level: float = CONFIDENCE

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Paired:
    """A against B on the same test examples: difference = b - a, its interval, a p-value.

    `test` names how the p-value was made. `p_resamples` is the number of
    Monte-Carlo draws behind it (0 for an exact or asymptotic p-value, which no
    number of resamples bounds); a Monte-Carlo p-value is at least
    1 / (p_resamples + 1).
    """

    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    identical: bool
    test: str
    n_resamples: int
    seed: int
    n: int
    confidence_level: float = CONFIDENCE
    details: dict = field(default_factory=dict)
    p_resamples: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


# --- input checks --------------------------------------------------------------------------------------------


def values(data, name: str, nonnegative: bool = False) -> np.ndarray:
    array = np.asarray(data, dtype=float)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(
            f"{name}: got shape {array.shape}; pass one number per test example, at least 2 examples"
        )
    bad = np.flatnonzero(~np.isfinite(array) | ((array < 0) if nonnegative else False))
    if bad.size:
        kind = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(
            f"{name}[{bad[0]}] is {array[bad[0]]}; every value must be {kind}: drop or rescore that example"
        )
    return array


def aligned(**arrays) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"lengths differ: {sizes}; pass per-example values aligned by test example id")
    return next(iter(sizes.values()))


def denominator(data, name: str) -> np.ndarray:
    # Every example counts: a resample of only zero-count examples would have no ratio at all.
    # prepare_data drops records with an empty output, so a 0 here is a bug upstream.
    array = values(data, name, nonnegative=True)
    zero = np.flatnonzero(array == 0)
    if zero.size:
        raise ValueError(f"{name}[{zero[0]}] is 0; every example needs at least one answer token or byte: drop it")
    return array


# --- the bootstrap -------------------------------------------------------------------------------------------


def bootstrap(data: tuple, statistic: Callable, point: float, n_resamples: int, seed: int, confidence_level: float):
    """(low, high, method): scipy's bootstrap of `statistic` over examples (the arrays resampled together).

    BCa, scipy's default: per-example scores are bounded and skewed (BLEU near 0,
    ROUGE-L near 1) and perplexity is a non-linear ratio; BCa corrects the
    percentile interval for the bias and skew of such statistics and is second-
    order accurate (Efron & Tibshirani 1993, ch. 14), where the percentile
    interval is not. BCa is undefined when every resample lands on one side of
    the point (very discrete scores); the percentile interval of the same
    resamples is used then, and the method says so. When every resample equals
    the point, up to rounding, the interval is the point.
    """
    from scipy.stats import DegenerateDataWarning
    from scipy.stats import bootstrap as scipy_bootstrap

    batch = max(1, _BATCH_ELEMENTS // len(data[0]))
    kwargs = dict(paired=True, vectorized=True, confidence_level=confidence_level, batch=batch)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # scipy warns, and returns NaN, where BCa is undefined; both are handled below.
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = scipy_bootstrap(data, statistic, n_resamples=n_resamples, method="BCa",
                                 rng=np.random.default_rng(seed), **kwargs)
    # All examples alike (or B = A + a constant): the resamples differ by float rounding at most.
    if np.ptp(result.bootstrap_distribution) <= 1e-12 * max(1.0, abs(point)):
        return point, point, "degenerate: every resample equals the point"
    low, high = result.confidence_interval
    if np.isnan(low) or np.isnan(high):
        result = scipy_bootstrap(data, statistic, n_resamples=0, method="percentile", bootstrap_result=result,
                                 **kwargs)
        low, high = result.confidence_interval
        return float(low), float(high), "bootstrap percentile (scipy; BCa undefined on these data)"
    return float(low), float(high), "bootstrap BCa (scipy)"


def identical(a: float, b: float, test: str, n_resamples: int, seed: int, n: int, confidence_level: float,
              details: dict | None = None) -> Paired:
    # Nothing differs, so there is nothing to test: a resampling p-value here would only measure its +1 rule.
    return Paired(a, b, 0.0, 0.0, 0.0, 1.0, True, test, n_resamples, seed, n, confidence_level, details or {})
