"""Corpus BLEU's intervals and paired tests, through sacreBLEU's public API.

Corpus BLEU is not a mean of sentence scores, so it is resampled through
sacreBLEU's sufficient statistics: each sentence's hypothesis and reference
lengths and its n-gram matches and totals (`BLEU.corpus_score` of the one
sentence gives them as `BLEUScore.sys_len`, `ref_len`, `counts`, `totals`),
summed over a resample and turned into BLEU by `BLEU.compute_bleu`, the
formula `corpus_bleu` itself ends in. Statistics of an example's seed
replicates are summed, so a resample takes an example with all its
replicates (a cluster bootstrap).

The paired tests are sacreBLEU's own (`sacrebleu --paired-bs` and
`--paired-ar`), redone with those public pieces and the same draws
(sacreBLEU's significance module keeps them in private functions):
tests/test_stats.py holds them to the command line's numbers. Both give a
Monte-Carlo p-value, at least 1/(R + 1): lmsweep.stats.family redraws one
whose significance after Holm that floor could decide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmsweep.stats import base

BLEU_TESTS = {"bs": "sacrebleu paired bootstrap resampling", "ar": "sacrebleu paired approximate randomization"}


def _metric(tokenize: str):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize)


def _statistics(metric, predictions: Sequence[str], references: Sequence[str], name: str) -> np.ndarray:
    """One row per sentence: hypothesis length, reference length, n-gram matches, n-gram totals (int64)."""
    base.aligned(**{name: predictions, "references": references})
    if len(predictions) < 2:
        raise ValueError(f"{name}: {len(predictions)} sentence(s); a bootstrap needs at least 2 test examples")
    rows = []
    for prediction, reference in zip(predictions, references):
        score = metric.corpus_score([prediction], [[reference]])
        rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    return np.asarray(rows, dtype=np.int64)


def scores(metric, sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU of each row of summed statistics (last axis), by sacreBLEU's BLEU.compute_bleu.

    The statistics keep their dtype: sacreBLEU's paired bootstrap sums them in
    float32, and so computes BLEU in float32 arithmetic; the same arrays here
    give its scores to the last bit.
    """
    order = metric.max_ngram_order
    flat = sums.reshape(-1, sums.shape[-1])
    out = [
        metric.compute_bleu(
            correct=row[2 : 2 + order].copy(), total=row[2 + order :].copy(), sys_len=int(row[0]),
            ref_len=int(row[1]), smooth_method=metric.smooth_method, smooth_value=metric.smooth_value,
            effective_order=metric.effective_order, max_ngram_order=order,
        ).score
        for row in flat
    ]
    return np.asarray(out, dtype=float).reshape(sums.shape[:-1])


def bleu_statistics(predictions: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> np.ndarray:
    """sacreBLEU's sufficient statistics, one row per sentence; rows of seed replicates of one
    example can be summed, and corpus BLEU of the sums is BLEU pooled over the replicates."""
    return _statistics(_metric(tokenize), predictions, references, "predictions")


def bleu_score(stats: np.ndarray, tokenize: str = "13a") -> float:
    """Corpus BLEU of per-sentence statistics (as sacrebleu.corpus_bleu on the sentences)."""
    return float(scores(_metric(tokenize), np.asarray(stats).sum(axis=0)))


def bleu_interval(predictions: Sequence[str], references: Sequence[str], *, tokenize: str = "13a",
                  confidence_level: float = base.CONFIDENCE, n_resamples: int = 9999,
                  seed: int = base.SEED) -> base.Interval:
    """Corpus BLEU (sacreBLEU) and its interval: resample sentences, recompute BLEU from their statistics."""
    stats = _statistics(_metric(tokenize), predictions, references, "predictions")
    return bleu_interval_from_stats(stats, tokenize=tokenize, confidence_level=confidence_level,
                                    n_resamples=n_resamples, seed=seed)


def bleu_interval_from_stats(stats: np.ndarray, *, tokenize: str = "13a", confidence_level: float = base.CONFIDENCE,
                             n_resamples: int = 9999, seed: int = base.SEED) -> base.Interval:
    """As bleu_interval, from per-example statistics (summed over seed replicates: examples are resampled
    with all their replicates, a cluster bootstrap)."""
    metric = _metric(tokenize)
    stats = np.asarray(stats)

    def corpus_bleu(*columns, axis):
        return scores(metric, np.stack([c.sum(axis=axis) for c in columns], axis=-1))

    point = float(scores(metric, stats.sum(axis=0)))
    low, high, method = base.bootstrap(tuple(stats.T), corpus_bleu, point, n_resamples, seed, confidence_level)
    return base.Interval(point, low, high, method, n_resamples, seed, len(stats), confidence_level)


def paired_bleu(predictions_a: Sequence[str], predictions_b: Sequence[str], references: Sequence[str], *,
                test: str = "bs", tokenize: str = "13a", n_resamples: int = 1000, seed: int = base.SEED,
                confidence_level: float = base.CONFIDENCE) -> base.Paired:
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
    metric = _metric(tokenize)
    stats_a = _statistics(metric, predictions_a, references, "predictions_a")
    stats_b = _statistics(metric, predictions_b, references, "predictions_b")
    return paired_bleu_from_stats(stats_a, stats_b, test=test, tokenize=tokenize, n_resamples=n_resamples,
                                  seed=seed, confidence_level=confidence_level)


# Resampled index arrays held at once: above it the draw goes in row blocks (the same numbers for sacreBLEU's
# defaults; for a block-sized draw numpy's stream could split differently from one (R, n) draw).
_DRAW_ELEMENTS = 20_000_000


def _bootstrap_scores(metric, stats_a: np.ndarray, stats_b: np.ndarray, n_resamples: int, seed: int):
    """BLEU of A and of B on the same resamples of sentences, drawn as sacreBLEU draws them.

    The statistics are counts: their float32 sums are exact in any order, so
    summing a whole block of resamples at once gives sacreBLEU's sums.
    """
    n = len(stats_a)
    rng = np.random.default_rng(seed)
    block = n_resamples if n_resamples * n <= _DRAW_ELEMENTS else max(1, _DRAW_ELEMENTS // n)
    stats_a32, stats_b32 = stats_a.astype(np.float32), stats_b.astype(np.float32)
    out_a, out_b = [], []
    for start in range(0, n_resamples, block):
        indices = rng.choice(n, size=(min(block, n_resamples - start), n), replace=True)
        for rows in np.array_split(indices, max(1, len(indices) * n * 10 // _DRAW_ELEMENTS + 1)):
            out_a.append(scores(metric, stats_a32[rows].sum(axis=1)))
            out_b.append(scores(metric, stats_b32[rows].sum(axis=1)))
    return np.concatenate(out_a), np.concatenate(out_b)


def _exceed_p(null: np.ndarray, observed: float) -> float:
    """sacreBLEU's p-value: (resamples above the observed value + 1) / (resamples + 1)."""
    return (int(np.sum(null > observed)) + 1) / (len(null) + 1)


def paired_bleu_from_stats(stats_a: np.ndarray, stats_b: np.ndarray, *, test: str = "bs", tokenize: str = "13a",
                           n_resamples: int = 1000, seed: int = base.SEED,
                           confidence_level: float = base.CONFIDENCE) -> base.Paired:
    """As paired_bleu, from per-example statistics (summed over seed replicates where there are several:
    the test then resamples examples with all their replicates)."""
    from sacrebleu.significance import estimate_ci

    if test not in BLEU_TESTS:
        raise ValueError(f"test is {test!r}; use 'bs' (paired bootstrap) or 'ar' (approximate randomization)")
    stats_a, stats_b = np.asarray(stats_a, dtype=np.int64), np.asarray(stats_b, dtype=np.int64)
    base.aligned(stats_a=stats_a, stats_b=stats_b)
    metric = _metric(tokenize)
    metric.num_refs = 1  # one reference per example; sacreBLEU sets it when it scores sentences, and signs it
    n = len(stats_a)
    score_a, score_b = float(scores(metric, stats_a.sum(axis=0))), float(scores(metric, stats_b.sum(axis=0)))
    signature = metric.get_signature()
    signature.update("seed", str(seed))
    signature.update(test, n_resamples)
    details = {"signature": str(signature)}
    # Equal statistics sentence by sentence leave nothing to test; sacreBLEU would still say p = 1/(R + 1).
    if np.array_equal(stats_a, stats_b):
        return base.identical(score_a, score_b, BLEU_TESTS[test], n_resamples, seed, n, confidence_level, details)
    observed = abs(score_b - score_a)
    # sacreBLEU's bootstrap draw, and its float32 statistics (BLEU's arithmetic then runs in float32);
    # for `ar` the interval of B - A comes from the same draw.
    resampled_a, resampled_b = _bootstrap_scores(metric, stats_a, stats_b, n_resamples, seed)
    if test == "bs":
        spread = np.abs(resampled_b - resampled_a)
        p = _exceed_p(spread - spread.mean(), observed)
    else:
        # Approximate randomization: each sentence's statistics go to A or B by a coin flip.
        chosen = np.random.default_rng(seed).integers(2, size=(n_resamples, n), dtype=bool)
        shuffled_a = scores(metric, chosen @ stats_a + ~chosen @ stats_b)
        shuffled_b = scores(metric, ~chosen @ stats_a + chosen @ stats_b)
        p = _exceed_p(np.abs(shuffled_a - shuffled_b), observed)
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(resampled_b - resampled_a, [alpha, 1 - alpha])
    for name, resampled in (("a", resampled_a), ("b", resampled_b)):
        mean, half_width = estimate_ci(resampled)
        details[f"{name}_mean"], details[f"{name}_ci"] = float(mean), float(half_width)
    details["interval"] = "bootstrap percentile of B - A over sentence resamples"
    return base.Paired(score_a, score_b, score_b - score_a, float(low), float(high), p, False, BLEU_TESTS[test],
                       n_resamples, seed, n, confidence_level, details, p_resamples=n_resamples)
