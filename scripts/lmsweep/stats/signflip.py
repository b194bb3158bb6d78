"""Paired p-values that no number of resamples bounds: the exact sign-flip test, or the t-test for large n.

Under the null hypothesis that A and B are exchangeable on every example, each
per-example difference d_i = b_i - a_i is as likely as -d_i, so the sum of
the differences is compared with its distribution over all 2**n sign patterns
(Fisher's randomization test; what scipy's permutation_test does with
permutation_type="samples"). A Monte-Carlo version of it cannot give a p-value
below 1/(R + 1) for R resamples, and with a few hundred comparisons Holm's
correction asks for less than that: the resampling floor, not the data, would
decide what is significant (issue 17). Here:

- an example with d_i = 0 changes nothing under a sign flip, so it is left
  out of the count (every count doubles; the p-value is the same);
- up to EXACT_MAX_N differing examples, the distribution is enumerated in
  full: the sums of each half's 2**(n/2) sign patterns, sorted, and the
  patterns of the whole as pairs of them (meet in the middle), so n = 40 takes
  two arrays of 2**20 sums instead of 2**40 patterns. The p-value is exact,
  at least 2 / 2**n;
- above that, the paired t-test (scipy's ttest_1samp of the differences),
  which the sign-flip distribution approaches as n grows (tests check the two
  against scipy's permutation test); its p-value is kept at or above the exact
  test's floor 2 / 2**n, which no test on n examples can go below.
"""

from __future__ import annotations

import numpy as np

# Up to this many differing examples the sign-flip distribution is enumerated: 2 x 2**20 sums at most.
EXACT_MAX_N = 40


def _sign_sums(x: np.ndarray) -> np.ndarray:
    """The sums of x under every sign pattern (2**len(x) of them)."""
    sums = np.zeros(1)
    for value in x:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def exact_sign_flip_p(differences) -> float:
    """Two-sided p-value of the sum of `differences` over every sign pattern, exactly."""
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return 1.0
    observed = abs(d.sum())
    # Sums of the same signs in another order differ by rounding only: within tol they are equal.
    tol = 1e-9 * np.abs(d).sum()
    if observed <= tol:
        return 1.0
    left, right = _sign_sums(d[: n // 2]), np.sort(_sign_sums(d[n // 2 :]))
    # Patterns with sum >= observed; by symmetry as many have sum <= -observed, and the two sets are disjoint.
    at_least = len(right) - np.searchsorted(right, observed - tol - left, side="left")
    count = int(at_least.sum())
    return min(1.0, 2 * count / 2.0**n)


def sign_flip_test(differences) -> tuple[float, str]:
    """(two-sided p-value, how it was made) of the paired differences b - a."""
    from scipy.stats import ttest_1samp

    d = np.asarray(differences, dtype=float)
    differing = int(np.count_nonzero(d))
    if differing <= EXACT_MAX_N:
        return exact_sign_flip_p(d), f"exact sign-flip test ({differing} examples differ: 2^{differing} sign patterns)"
    floor = 2.0 ** (1 - differing)
    if np.ptp(d) == 0:  # every example moved by the same amount: the t statistic is infinite
        return floor, f"sign-flip test: all {differing} differences equal, p at its exact floor 2/2^{differing}"
    p = float(ttest_1samp(d, 0.0).pvalue)
    return max(p, floor), f"paired t-test ({len(d)} examples, {differing} differ; sign-flip distribution approximated)"
