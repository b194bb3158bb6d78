"""Many tests at once: Holm's correction over the study's family, and Monte-Carlo p-values settled against it.

A Monte-Carlo p-value p from R resamples is an estimate: more resamples move
it by about sqrt(p (1 - p) / R). Where that could move it across the level
Holm holds it to, the decision would be the resampling's, not the data's
(issue 17: every significant result of a study sat at p = 2/(R + 1), and one
more exceedance would have undone it). `settle` redraws exactly those tests
with ten times the resamples, independently, until each is decided or
`max_resamples` is reached; the others keep their first draw.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

# A Monte-Carlo p-value is taken as decided when its threshold lies this many standard errors away.
MARGIN_SE = 4.0


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


def holm_levels(p_values, alpha: float) -> np.ndarray:
    """The level Holm compares each p-value with, alpha / (m - rank + 1) by its rank among the m present
    (NaN where there is no p-value). A p-value below its level is significant if every smaller one is."""
    p = np.asarray(p_values, dtype=float)
    levels = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    levels[order] = alpha / (m - np.arange(m))
    return levels


def undecided(p: float, resamples: int, level: float) -> bool:
    """Whether more resamples could carry a Monte-Carlo p-value across its level.

    p is sacreBLEU's or scipy's conservative estimate, (exceedances + 1) /
    (R + 1): at or below the level it is significant as it stands; above it,
    it is decided only when the level lies MARGIN_SE standard errors below it.
    """
    if resamples <= 0 or math.isnan(p) or p <= level:
        return False
    return p - MARGIN_SE * math.sqrt(p * (1 - p) / resamples) <= level


def settle(results: list, redraw: list[Callable], alpha: float, max_resamples: int) -> list:
    """Redraw, with ten times the resamples (at most max_resamples), each Monte-Carlo test that Holm's
    decision could turn on, until none is left; return the results (each a stats Paired, or None for a
    row without a p-value). `redraw[i](n_resamples, seed)` reruns test i."""
    results = list(results)
    rounds = 0
    while True:
        p = [np.nan if r is None or r.identical else r.p_value for r in results]
        levels = holm_levels(p, alpha)
        todo = [i for i, r in enumerate(results)
                if r is not None and not r.identical and 0 < r.p_resamples < max_resamples
                and undecided(r.p_value, r.p_resamples, levels[i])]
        if not todo:
            return results
        rounds += 1
        for i in todo:
            before = results[i]
            resamples = min(max_resamples, 10 * before.p_resamples)
            results[i] = redraw[i](n_resamples=resamples, seed=before.seed + rounds)
            log.info(f"redrew a Monte-Carlo test with {resamples} resamples: p {before.p_value:.3g} -> "
                f"{results[i].p_value:.3g} (Holm level {levels[i]:.3g})")


def unsettled(results: list, alpha: float) -> list[bool]:
    """Per result: a Monte-Carlo p-value whose significance after Holm its resamples still cannot decide."""
    p = [np.nan if r is None or r.identical else r.p_value for r in results]
    levels = holm_levels(p, alpha)
    return [r is not None and not r.identical and undecided(r.p_value, r.p_resamples, levels[i])
            for i, r in enumerate(results)]
