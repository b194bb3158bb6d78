"""How sure are we: bootstrap intervals, paired tests, Holm, rank agreement, output hygiene.

Inputs are the per-example numbers the workflow keeps, aligned by test example
id: scores for the mean metrics (ROUGE-L, BERTScore, sentence BLEU), the raw
strings for corpus BLEU (which is not a mean of sentence BLEU), summed NLL in
nats with answer token counts (perplexity) or reference UTF-8 byte counts (bits
per byte). Every resampling function takes `n_resamples` and `seed` and says in
its result which method or test produced the numbers. A paired result's
difference is always B - A.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
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
    """A against B on the same test examples: difference = b - a, its interval, a p-value."""

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

    def as_dict(self) -> dict:
        return asdict(self)


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


# --- input checks --------------------------------------------------------------------------------------------


def _values(values, name: str, nonnegative: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=float)
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


def _aligned(**arrays: np.ndarray) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"lengths differ: {sizes}; pass per-example values aligned by test example id")
    return next(iter(sizes.values()))


def _denominator(values, name: str) -> np.ndarray:
    # Every example counts: a resample of only zero-count examples would have no ratio at all.
    # prepare_data drops records with an empty output, so a 0 here is a bug upstream.
    array = _values(values, name, nonnegative=True)
    zero = np.flatnonzero(array == 0)
    if zero.size:
        raise ValueError(f"{name}[{zero[0]}] is 0; every example needs at least one answer token or byte: drop it")
    return array


# --- the bootstrap -------------------------------------------------------------------------------------------


def _bootstrap(data: tuple, statistic: Callable, point: float, n_resamples: int, seed: int, confidence_level: float):
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
    from scipy.stats import DegenerateDataWarning, bootstrap

    batch = max(1, _BATCH_ELEMENTS // len(data[0]))
    kwargs = dict(paired=True, vectorized=True, confidence_level=confidence_level, batch=batch)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # scipy warns, and returns NaN, where BCa is undefined; both are handled below.
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(data, statistic, n_resamples=n_resamples, method="BCa",
                           rng=np.random.default_rng(seed), **kwargs)
    # All examples alike (or B = A + a constant): the resamples differ by float rounding at most.
    if np.ptp(result.bootstrap_distribution) <= 1e-12 * max(1.0, abs(point)):
        return point, point, "degenerate: every resample equals the point"
    low, high = result.confidence_interval
    if np.isnan(low) or np.isnan(high):
        result = bootstrap(data, statistic, n_resamples=0, method="percentile", bootstrap_result=result, **kwargs)
        low, high = result.confidence_interval
        return float(low), float(high), "bootstrap percentile (scipy; BCa undefined on these data)"
    return float(low), float(high), "bootstrap BCa (scipy)"


def _permutation_p(data: tuple, statistic: Callable, n_resamples: int, seed: int) -> float:
    """Two-sided paired permutation test: swap A and B within each example (a sign flip of the difference).

    Exact, over all 2**n swaps, when that is no more than n_resamples.
    """
    from scipy.stats import permutation_test

    result = permutation_test(data, statistic, permutation_type="samples", vectorized=True,
                              n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


# --- intervals of one run ------------------------------------------------------------------------------------


def mean_interval(values, *, confidence_level: float = CONFIDENCE, n_resamples: int = 9999,
                  seed: int = SEED) -> Interval:
    """Mean of per-example scores (ROUGE-L, BERTScore, sentence BLEU) and its bootstrap interval."""
    x = _values(values, "values")
    point = float(np.mean(x))
    low, high, method = _bootstrap((x,), lambda v, axis: np.mean(v, axis=axis), point,
                                   n_resamples, seed, confidence_level)
    return Interval(point, low, high, method, n_resamples, seed, len(x), confidence_level)


def _bleu_metric(tokenize: str):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize)


def _bleu_stats(metric, predictions: Sequence[str], references: Sequence[str], name: str) -> np.ndarray:
    """sacreBLEU's per-sentence sufficient statistics (lengths, n-gram matches and totals), int64."""
    _aligned(**{name: predictions, "references": references})
    if len(predictions) < 2:
        raise ValueError(f"{name}: {len(predictions)} sentence(s); a bootstrap needs at least 2 test examples")
    return np.asarray(metric._extract_corpus_statistics(list(predictions), [list(references)]), dtype=np.int64)


def _bleu_from_sums(metric, sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU from summed statistics (last axis), by sacreBLEU's own formula."""
    flat = sums.reshape(-1, sums.shape[-1])
    scores = [metric._compute_score_from_stats(row).score for row in flat]
    return np.asarray(scores, dtype=float).reshape(sums.shape[:-1])


def bleu_statistics(predictions: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> np.ndarray:
    """sacreBLEU's sufficient statistics, one row per sentence; rows of seed replicates of one
    example can be summed, and corpus BLEU of the sums is BLEU pooled over the replicates."""
    return _bleu_stats(_bleu_metric(tokenize), predictions, references, "predictions")


def bleu_score(stats: np.ndarray, tokenize: str = "13a") -> float:
    """Corpus BLEU of per-sentence statistics (as sacrebleu.corpus_bleu on the sentences)."""
    return float(_bleu_from_sums(_bleu_metric(tokenize), np.asarray(stats).sum(axis=0)))


def bleu_interval(predictions: Sequence[str], references: Sequence[str], *, tokenize: str = "13a",
                  confidence_level: float = CONFIDENCE, n_resamples: int = 9999, seed: int = SEED) -> Interval:
    """Corpus BLEU (sacreBLEU) and its interval: resample sentences, recompute BLEU from their statistics."""
    stats = _bleu_stats(_bleu_metric(tokenize), predictions, references, "predictions")
    return bleu_interval_from_stats(stats, tokenize=tokenize, confidence_level=confidence_level,
                                    n_resamples=n_resamples, seed=seed)


def bleu_interval_from_stats(stats: np.ndarray, *, tokenize: str = "13a", confidence_level: float = CONFIDENCE,
                             n_resamples: int = 9999, seed: int = SEED) -> Interval:
    """As bleu_interval, from per-example statistics (summed over seed replicates: examples are resampled
    with all their replicates, a cluster bootstrap)."""
    metric = _bleu_metric(tokenize)
    stats = np.asarray(stats)

    def corpus_bleu(*columns, axis):
        return _bleu_from_sums(metric, np.stack([c.sum(axis=axis) for c in columns], axis=-1))

    point = float(_bleu_from_sums(metric, stats.sum(axis=0)))
    low, high, method = _bootstrap(tuple(stats.T), corpus_bleu, point, n_resamples, seed, confidence_level)
    return Interval(point, low, high, method, n_resamples, seed, len(stats), confidence_level)


def _perplexity(nll, tokens, axis=-1):
    return np.exp(np.sum(nll, axis=axis) / np.sum(tokens, axis=axis))


def _bits_per_byte(nll, n_bytes, axis=-1):
    # as lm-evaluation-harness: summed NLL (nats) over summed bytes, in bits
    return np.sum(nll, axis=axis) / (np.sum(n_bytes, axis=axis) * math.log(2))


def _ratio_interval(ratio, nll, counts, count_name, confidence_level, n_resamples, seed) -> Interval:
    nll = _values(nll, "nll", nonnegative=True)
    counts = _denominator(counts, count_name)
    n = _aligned(nll=nll, **{count_name: counts})
    point = float(ratio(nll, counts))
    low, high, method = _bootstrap((nll, counts), ratio, point, n_resamples, seed, confidence_level)
    return Interval(point, low, high, method, n_resamples, seed, n, confidence_level)


def perplexity_interval(nll, tokens, *, confidence_level: float = CONFIDENCE, n_resamples: int = 9999,
                        seed: int = SEED) -> Interval:
    """Token perplexity exp(sum NLL / sum tokens) and its interval: examples resampled, the ratio recomputed."""
    return _ratio_interval(_perplexity, nll, tokens, "tokens", confidence_level, n_resamples, seed)


def bits_per_byte_interval(nll, n_bytes, *, confidence_level: float = CONFIDENCE, n_resamples: int = 9999,
                           seed: int = SEED) -> Interval:
    """Bits per byte sum NLL / (sum bytes * ln 2) and its interval: examples resampled, the ratio recomputed."""
    return _ratio_interval(_bits_per_byte, nll, n_bytes, "n_bytes", confidence_level, n_resamples, seed)


# --- paired tests, A against B -------------------------------------------------------------------------------


def _identical(a: float, b: float, test: str, n_resamples: int, seed: int, n: int, confidence_level: float,
               details: dict | None = None) -> Paired:
    # Nothing differs, so there is nothing to test: a resampling p-value here would only measure its +1 rule.
    return Paired(a, b, 0.0, 0.0, 0.0, 1.0, True, test, n_resamples, seed, n, confidence_level, details or {})


MEAN_TEST = "paired bootstrap (scipy), sign-flip permutation test (scipy)"


def paired_mean(a, b, *, confidence_level: float = CONFIDENCE, n_resamples: int = 9999,
                seed: int = SEED) -> Paired:
    """Mean of B's per-example scores minus A's: paired bootstrap interval, sign-flip permutation p-value."""
    a, b = _values(a, "a"), _values(b, "b")
    n = _aligned(a=a, b=b)
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    if np.array_equal(a, b):
        return _identical(mean_a, mean_b, MEAN_TEST, n_resamples, seed, n, confidence_level)

    def difference(x, y, axis):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    point = mean_b - mean_a
    low, high, method = _bootstrap((a, b), difference, point, n_resamples, seed, confidence_level)
    p = _permutation_p((a, b), difference, n_resamples, seed)
    return Paired(mean_a, mean_b, point, low, high, p, False, MEAN_TEST, n_resamples, seed, n, confidence_level,
                  {"interval": method})


def _paired_ratio(ratio, nll_a, counts_a, nll_b, counts_b, count_name, confidence_level, n_resamples,
                  seed) -> Paired:
    test = f"paired bootstrap (scipy) of the {ratio.__name__[1:]} difference, swap permutation test (scipy)"
    nll_a, nll_b = _values(nll_a, "nll_a", nonnegative=True), _values(nll_b, "nll_b", nonnegative=True)
    counts_a, counts_b = _denominator(counts_a, f"{count_name}_a"), _denominator(counts_b, f"{count_name}_b")
    n = _aligned(nll_a=nll_a, nll_b=nll_b, **{f"{count_name}_a": counts_a, f"{count_name}_b": counts_b})
    value_a, value_b = float(ratio(nll_a, counts_a)), float(ratio(nll_b, counts_b))
    if np.array_equal(nll_a, nll_b) and np.array_equal(counts_a, counts_b):
        return _identical(value_a, value_b, test, n_resamples, seed, n, confidence_level)

    def difference(na, ca, nb, cb, axis):
        return ratio(nb, cb, axis=axis) - ratio(na, ca, axis=axis)

    point = value_b - value_a
    low, high, method = _bootstrap((nll_a, counts_a, nll_b, counts_b), difference, point,
                                   n_resamples, seed, confidence_level)
    # The permutation test swaps an example's (NLL, count) pair between A and B. scipy permutes
    # single values, so it permutes indices into the pooled arrays: A's example i is i, B's is n + i.
    pooled_nll, pooled_counts = np.concatenate([nll_a, nll_b]), np.concatenate([counts_a, counts_b])

    def swapped_difference(index_a, index_b, axis):
        ia, ib = index_a.astype(np.int64), index_b.astype(np.int64)
        return (ratio(pooled_nll[ib], pooled_counts[ib], axis=axis)
                - ratio(pooled_nll[ia], pooled_counts[ia], axis=axis))

    p = _permutation_p((np.arange(n), np.arange(n, 2 * n)), swapped_difference, n_resamples, seed)
    return Paired(value_a, value_b, point, low, high, p, False, test, n_resamples, seed, n, confidence_level,
                  {"interval": method})


def paired_perplexity(nll_a, tokens_a, nll_b, tokens_b, *, confidence_level: float = CONFIDENCE,
                      n_resamples: int = 9999, seed: int = SEED) -> Paired:
    """Token perplexity of B minus A on the same examples (comparable only under one tokenizer)."""
    return _paired_ratio(_perplexity, nll_a, tokens_a, nll_b, tokens_b, "tokens", confidence_level,
                         n_resamples, seed)


def paired_bits_per_byte(nll_a, bytes_a, nll_b, bytes_b, *, confidence_level: float = CONFIDENCE,
                         n_resamples: int = 9999, seed: int = SEED) -> Paired:
    """Bits per byte of B minus A on the same examples (comparable across tokenizers)."""
    return _paired_ratio(_bits_per_byte, nll_a, bytes_a, nll_b, bytes_b, "bytes", confidence_level,
                         n_resamples, seed)


BLEU_TESTS = {"bs": "sacrebleu paired bootstrap resampling", "ar": "sacrebleu paired approximate randomization"}


def paired_bleu(predictions_a: Sequence[str], predictions_b: Sequence[str], references: Sequence[str], *,
                test: str = "bs", tokenize: str = "13a", n_resamples: int = 1000, seed: int = SEED,
                confidence_level: float = CONFIDENCE) -> Paired:
    """Corpus BLEU of B minus A, with sacreBLEU's own paired test (`sacrebleu --paired-bs` or `--paired-ar`).

    The p-value is sacreBLEU's (two-sided, on |B - A|). `n_resamples` is
    `--paired-bs-n` (default 1000) or `--paired-ar-n` (sacreBLEU's default
    10000) and `seed` is SACREBLEU_SEED; the CLI alone treats seed 0 as
    unseeded. The interval of the difference is the percentile interval of
    B - A over paired bootstrap resamples of sentences, drawn as sacreBLEU's
    bootstrap draws them (for `bs`, the very resamples behind its p-value).
    `details` holds each system's bootstrap mean and 95% half-width as the CLI
    prints them (`μ ± CI`), and the signature.
    """
    metric = _bleu_metric(tokenize)
    stats_a = _bleu_stats(metric, predictions_a, references, "predictions_a")
    stats_b = _bleu_stats(metric, predictions_b, references, "predictions_b")
    return paired_bleu_from_stats(stats_a, stats_b, test=test, tokenize=tokenize, n_resamples=n_resamples,
                                  seed=seed, confidence_level=confidence_level)


def _precomputed_bleu(tokenize: str, stats: np.ndarray):
    """A sacreBLEU BLEU whose statistics of a system are given, not extracted from its sentences."""
    from sacrebleu.metrics import BLEU

    class PrecomputedBLEU(BLEU):
        def _extract_corpus_statistics(self, hypotheses, references):
            return stats.tolist()

    return PrecomputedBLEU(tokenize=tokenize)


def paired_bleu_from_stats(stats_a: np.ndarray, stats_b: np.ndarray, *, test: str = "bs", tokenize: str = "13a",
                           n_resamples: int = 1000, seed: int = SEED,
                           confidence_level: float = CONFIDENCE) -> Paired:
    """As paired_bleu, from per-example statistics (summed over seed replicates where there are several:
    sacreBLEU's test then resamples examples with all their replicates)."""
    from sacrebleu import significance

    if test not in BLEU_TESTS:
        raise ValueError(f"test is {test!r}; use 'bs' (paired bootstrap) or 'ar' (approximate randomization)")
    stats_a, stats_b = np.asarray(stats_a, dtype=np.int64), np.asarray(stats_b, dtype=np.int64)
    _aligned(stats_a=stats_a, stats_b=stats_b)
    metric = _bleu_metric(tokenize)
    metric.num_refs = 1  # lmsweep scores against one reference per example; the signature records it
    n = len(stats_a)
    score_a = float(_bleu_from_sums(metric, stats_a.sum(axis=0)))
    score_b = float(_bleu_from_sums(metric, stats_b.sum(axis=0)))
    signature = metric.get_signature()
    signature.update("seed", str(seed))
    signature.update(test, n_resamples)
    details = {"signature": str(signature)}
    # Equal statistics sentence by sentence leave nothing to test; sacreBLEU would still say p = 1/(R + 1).
    if np.array_equal(stats_a, stats_b):
        return _identical(score_a, score_b, BLEU_TESTS[test], n_resamples, seed, n, confidence_level, details)

    baseline = {"BLEU": (stats_a.tolist(), significance.Result(score_a))}
    run = significance._paired_bs_test if test == "bs" else significance._paired_ar_test
    # The system's sentences are only counted (their statistics are given): n placeholders.
    system = _precomputed_bleu(tokenize, stats_b)
    system.num_refs = 1
    _, results = run(baseline, "B", [""] * n, None, {"BLEU": system},
                     n_resamples, -1, seed)
    p = float(results["BLEU"].p_value)

    # sacreBLEU's draw and its float32 statistics (BLEU's arithmetic then runs in float32), so that
    # the resampled scores are sacreBLEU's to the last bit; row by row, not all (R, n, 10) at once.
    indices = np.random.default_rng(seed).choice(n, size=(n_resamples, n), replace=True)
    stats_a32, stats_b32 = stats_a.astype(np.float32), stats_b.astype(np.float32)
    resampled_a = _bleu_from_sums(metric, np.stack([stats_a32[i].sum(axis=0) for i in indices]))
    resampled_b = _bleu_from_sums(metric, np.stack([stats_b32[i].sum(axis=0) for i in indices]))
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(resampled_b - resampled_a, [alpha, 1 - alpha])
    for name, resampled in (("a", resampled_a), ("b", resampled_b)):
        mean, half_width = significance.estimate_ci(resampled)
        details[f"{name}_mean"], details[f"{name}_ci"] = float(mean), float(half_width)
    details["interval"] = "bootstrap percentile of B - A over sentence resamples"
    return Paired(score_a, score_b, score_b - score_a, float(low), float(high), p, False, BLEU_TESTS[test],
                  n_resamples, seed, n, confidence_level, details)


# --- many comparisons, many metrics, many seeds --------------------------------------------------------------


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order; NaN stays NaN and is not counted in m.

    The i-th smallest of m p-values becomes max over j <= i of (m - j + 1) * p_(j),
    capped at 1 (Holm 1979; R's p.adjust(method = "holm")).
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def rank_correlation(x, y, method: str = "spearman") -> Correlation:
    """Spearman's rho or Kendall's tau-b (ties averaged) of two metrics across runs, pairs with a NaN dropped."""
    from scipy import stats

    functions = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}
    if method not in functions:
        raise ValueError(f"method is {method!r}; use 'spearman' or 'kendall'")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    _aligned(x=x, y=y)
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


# --- output hygiene ------------------------------------------------------------------------------------------


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
