"""The statistics the verdict rests on: intervals, paired differences, McNemar, items needed.

Everything is delegated to scipy where scipy has it: Wilson intervals for proportions
(`scipy.stats.binomtest(...).proportion_ci`), `scipy.stats.bootstrap` for any other
mean, for cluster resampling (resample whole groups of items) and for paired
differences, and McNemar's exact test as scipy's exact binomial test on the discordant
pairs (the definition of the exact McNemar test). Every resampling is seeded: the same
data gives the same interval.

One-sided bounds: a lever "meets" a threshold at confidence c when its one-sided lower
bound at level c clears it; that bound is the low end of a two-sided interval at level
2c - 1 (so 0.95 one-sided = the low end of a 90% two-sided interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats as sps

POWER = 0.80  # power of the items-needed calculation (the field's customary default)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


@lru_cache(maxsize=4096)
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided Wilson score interval of a proportion, from scipy.

    >>> iv = wilson_interval(249, 300, 0.95)
    >>> round(iv.value, 3), round(iv.low, 3), round(iv.high, 3)
    (0.83, 0.783, 0.868)

    Raises ValueError when n < 1 or successes is outside [0, n].
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    ci = sps.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), confidence)


def _groups_index(groups: Sequence[Any] | None, n: int) -> np.ndarray | None:
    """Integer group code per item, or None when there are no groups (or every item is its own)."""
    if groups is None:
        return None
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} items")
    _, codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return None if codes.max() + 1 == n else codes


def _scipy_bootstrap(data: np.ndarray, codes: np.ndarray | None, confidence: float, seed: int,
                     n_resamples: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the item mean; with `codes`, whole groups are resampled.

    Cluster bootstrap through scipy: the resampled unit is the group, and the statistic is
    the item mean over the drawn groups (sum of group sums over sum of group sizes).
    """
    if codes is None:
        sums, sizes = data, np.ones_like(data)
    else:
        sums = np.bincount(codes, weights=data)
        sizes = np.bincount(codes).astype(float)
    if sums.size < 2 or np.allclose(sums / sizes, sums[0] / sizes[0]):
        v = float(data.mean())  # no spread: every resample has the same mean
        return v, v

    def mean_of(ix: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.take(sums, ix).sum(axis=axis) / np.take(sizes, ix).sum(axis=axis)

    res = sps.bootstrap((np.arange(sums.size),), mean_of, confidence_level=confidence, n_resamples=n_resamples,
                        method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def metric_interval(values: Sequence[float], confidence: float = 0.95, *, groups: Sequence[Any] | None = None,
                    seed: int = 0, n_resamples: int = 2000) -> Interval:
    """Two-sided interval of the mean of per-item scores.

    Binary scores (accuracy, exact match) without groups: Wilson. Otherwise a seeded
    percentile bootstrap (scipy); with `groups` (one label per item, e.g. the document a
    question is about) whole groups are resampled, since items in a group are not independent.
    Raises ValueError on an empty list or mismatched groups.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no items to compute an interval over")
    codes = _groups_index(groups, x.size)
    if codes is None and _binary(x):
        return wilson_interval(int(x.sum()), int(x.size), confidence)
    low, high = _scipy_bootstrap(x, codes, confidence, seed, n_resamples)
    return Interval(float(x.mean()), low, high, confidence)


def one_sided_bounds(values: Sequence[float], confidence: float = 0.95, *, groups: Sequence[Any] | None = None,
                     seed: int = 0) -> tuple[float, float]:
    """(lower, upper): each a one-sided bound of the mean at `confidence`."""
    iv = metric_interval(values, 2 * confidence - 1, groups=groups, seed=seed)
    return iv.low, iv.high


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of per-item scores (scipy), ungrouped.

    >>> iv = bootstrap_interval([1.0] * 8 + [0.0] * 2)
    >>> iv.value, iv.low <= 0.8 <= iv.high
    (0.8, True)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no items to bootstrap")
    low, high = _scipy_bootstrap(x, None, confidence, seed, n_boot)
    return Interval(float(x.mean()), low, high, confidence)


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], float],
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of any statistic of a set of items (e.g. macro-F1), via scipy.

    `statistic(indices)` computes the figure on the items at `indices`.
    """
    full = float(statistic(np.arange(n)))
    res = sps.bootstrap((np.arange(n),), lambda ix: statistic(ix.astype(int)), confidence_level=confidence,
                        n_resamples=n_boot, method="percentile", vectorized=False,
                        random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval.low, res.confidence_interval.high
    if np.isnan(low):  # a statistic with no spread
        low = high = full
    return Interval(full, float(low), float(high), confidence)


# -- paired comparisons -----------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """mean(a) - mean(b) over the same items, with a two-sided interval and McNemar's exact p."""

    value: float
    low: float
    high: float
    confidence: float
    mcnemar_p: float | None  # binary scores only
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact McNemar p-value for paired binary scores (1 = right).

    Only the discordant pairs carry information: with b01 items right under `a` only and
    b10 under `b` only, p = binomtest(b01, b01 + b10, 0.5) (scipy), 1.0 when none differ.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    only_a, only_b = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, *,
                      groups: Sequence[Any] | None = None, seed: int = 0,
                      n_resamples: int = 2000) -> PairedDifference:
    """Difference of two levers' per-item scores on the same items, paired bootstrap (scipy).

    `a` and `b` are aligned item by item (same example ids, same order). The per-item
    differences are resampled (whole groups with `groups`), so what the items share cancels.
    Raises ValueError when the lengths differ or there are no items.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"paired scores need the same non-zero number of items, got {x.size} and {y.size}")
    d = x - y
    codes = _groups_index(groups, d.size)
    low, high = _scipy_bootstrap(d, codes, confidence, seed, n_resamples)
    p = mcnemar_exact(x, y) if _binary(x) and _binary(y) else None
    return PairedDifference(float(d.mean()), low, high, confidence, p, int(d.size))


# -- how many items would settle it -----------------------------------------------------------


def items_needed(value: float, threshold: float, std_error: float, n: int, confidence: float = 0.95,
                 power: float = POWER) -> int | None:
    """Total eval items at which a one-sided test against `threshold` would settle the call.

    Normal-approximation power calculation for a one-sided one-sample test of the mean
    against the threshold: n* = n * ((z_conf + z_power) * se / (value - threshold))^2, where
    se is the observed standard error at n items (binomial, bootstrap or cluster), i.e. the
    size at which a lever whose true score is the observed one would clear (or fall below)
    the threshold with probability `power`. None when value == threshold or se == 0.
    """
    gap = abs(value - threshold)
    if gap < 1e-12 or std_error <= 0 or n < 1:
        return None
    z = sps.norm.ppf(confidence) + sps.norm.ppf(power)
    return int(np.ceil(n * (z * std_error / gap) ** 2))


def std_error(values: Sequence[float], groups: Sequence[Any] | None = None) -> float:
    """Standard error of the item mean; with groups, the cluster (between-group) standard error."""
    x = np.asarray(values, dtype=float)
    codes = _groups_index(groups, x.size)
    if codes is None:
        return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    sums, sizes = np.bincount(codes, weights=x), np.bincount(codes).astype(float)
    k, mean = sums.size, x.mean()
    # Ratio-estimator (cluster-robust) variance of the mean over k groups.
    resid = sums - mean * sizes
    return float(np.sqrt(k / (k - 1) * np.sum(resid**2)) / sizes.sum()) if k > 1 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0
