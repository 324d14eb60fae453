"""Interval estimates and tests for per-arm rates: Wilson intervals, the two-proportion
z-test (arms on different users) and the paired difference (arms on the same users).

Pure functions of counts; see docs/ab-testing.md for when each applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Z_95", "PairedDifference", "ProportionTest", "normal_sf", "paired_rate_difference",
           "two_proportion_test", "wilson_interval"]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for ``successes / n``; ``(nan, nan)`` when ``n == 0``.

    >>> tuple(round(x, 4) for x in wilson_interval(5, 10))
    (0.2366, 0.7634)
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class ProportionTest:
    """Arm A's rate minus arm B's, its 95% CI and the two-sided pooled z-test."""

    rate_a: float
    rate_b: float
    diff: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the difference is significant at the 5% level."""
        return self.p_value < 0.05


def two_proportion_test(x_a: int, n_a: int, x_b: int, n_b: int,
                        z_crit: float = Z_95) -> ProportionTest:
    """Compare ``x_a/n_a`` with ``x_b/n_b``: pooled-variance z-test and an unpooled (Wald)
    interval for the difference. Rates and statistics are nan when a side is empty."""
    for x, n in ((x_a, n_a), (x_b, n_b)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"two_proportion_test: need 0 <= x <= n, got {x}/{n}")
    if n_a == 0 or n_b == 0:
        nan = math.nan
        return ProportionTest(x_a / n_a if n_a else nan, x_b / n_b if n_b else nan,
                              nan, nan, nan, nan, nan)
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_a - p_b
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se_pooled == 0.0:
        z, p_value = 0.0, 1.0  # both arms all-0 or all-1: no evidence of a difference
    else:
        z = diff / se_pooled
        p_value = min(1.0, 2.0 * normal_sf(abs(z)))
    return ProportionTest(p_a, p_b, diff, diff - z_crit * se, diff + z_crit * se, z, p_value)


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Arm A's rate minus arm B's on the same users and trials, with a 95% CI and a
    two-sided z-test whose unit is the user."""

    rate_a: float
    rate_b: float
    diff: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    users: int

    @property
    def significant(self) -> bool:
        """True when the difference is significant at the 5% level."""
        return self.p_value < 0.05


def paired_rate_difference(hits_a: Sequence[int], hits_b: Sequence[int],
                           trials: Sequence[int], z_crit: float = Z_95) -> PairedDifference:
    """Compare two arms that served the same ``trials[u]`` recommendations to each user u,
    arm A earning ``hits_a[u]`` successes and arm B ``hits_b[u]``.

    The rates are pooled (``sum(hits) / sum(trials)``); the difference's standard error is
    the user-clustered (delta-method) one of a ratio of sums,
    ``sqrt(U / (U - 1) * sum((d_u - diff * n_u) ** 2)) / sum(n_u)`` with
    ``d_u = hits_a[u] - hits_b[u]``, so a heavy user counts as one correlated unit and the
    pairing removes the between-user variance. Statistics are nan with fewer than 2 users.

    >>> round(paired_rate_difference([3, 2, 1], [1, 2, 0], [4, 4, 2]).ci_high, 4)
    0.6593
    """
    if not len(hits_a) == len(hits_b) == len(trials):
        raise ValueError(f"paired_rate_difference: need one count per user in each sequence, "
                         f"got {len(hits_a)}, {len(hits_b)} and {len(trials)}")
    for a, b, n in zip(hits_a, hits_b, trials, strict=True):
        if n < 0 or not (0 <= a <= n and 0 <= b <= n):
            raise ValueError(f"paired_rate_difference: need 0 <= hits <= trials, "
                             f"got {a} and {b} of {n}")
    users = len(trials)
    total = sum(trials)
    nan = math.nan
    if users < 2 or total == 0:
        return PairedDifference(sum(hits_a) / total if total else nan,
                                sum(hits_b) / total if total else nan,
                                nan, nan, nan, nan, nan, users)
    rate_a, rate_b = sum(hits_a) / total, sum(hits_b) / total
    diff = rate_a - rate_b
    residuals = sum((a - b - diff * n) ** 2 for a, b, n in zip(hits_a, hits_b, trials,
                                                                strict=True))
    se = math.sqrt(users / (users - 1) * residuals) / total
    if se == 0.0:
        z = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        p_value = 1.0 if diff == 0.0 else 0.0
    else:
        z = diff / se
        p_value = min(1.0, 2.0 * normal_sf(abs(z)))
    return PairedDifference(rate_a, rate_b, diff, diff - z_crit * se, diff + z_crit * se, z,
                            p_value, users)
