"""The statistics the verdict rests on: intervals, paired differences and tests, power, Holm.

Everything is delegated to a library where one has it: Wilson intervals for proportions
(`scipy.stats.binomtest(...).proportion_ci`; `statsmodels.stats.proportion.proportion_confint`
where the count is not a whole number), `scipy.stats.bootstrap` for any other mean, for
cluster resampling (resample whole groups of items) and for paired differences, McNemar's
exact test as scipy's exact binomial test on the discordant pairs (the definition of the
exact McNemar test), the cluster-robust test of a mean as statsmodels' OLS with
cluster-robust standard errors, power as `statsmodels.stats.power.NormalIndPower`, and Holm's
step-down procedure as `statsmodels.stats.multitest.multipletests`. Every resampling is
seeded: the same data gives the same interval.

One-sided bounds: a lever "meets" a threshold at confidence c when its one-sided lower
bound at level c clears it; that bound is the low end of a two-sided interval at level
2c - 1 (so 0.95 one-sided = the low end of a 90% two-sided interval).

Groups (items that share a passage, a document, a user): items in a group are not
independent, so every interval and test here resamples or sums whole groups, and no
interval is narrower than the design-effect-adjusted Wilson interval (Kish 1965): a
cluster bootstrap over groups whose scores happen to agree would otherwise collapse to
zero width while the items themselves vary.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
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


def _wilson_effective(p: float, n_eff: float, confidence: float) -> tuple[float, float]:
    """Wilson interval of a proportion `p` observed on `n_eff` effective items (a real number).

    statsmodels' `proportion_confint(method="wilson")` accepts a fractional count and
    size, which the design-effect-adjusted interval needs (Kish's effective n = n / deff).
    """
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(p * n_eff, n_eff, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


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
        v = float(data.mean())  # no spread between units: every resample has the same mean
        return v, v

    def mean_of(ix: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.take(sums, ix).sum(axis=axis) / np.take(sizes, ix).sum(axis=axis)

    res = sps.bootstrap((np.arange(sums.size),), mean_of, confidence_level=confidence, n_resamples=n_resamples,
                        method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _cluster_variance(x: np.ndarray, codes: np.ndarray) -> float:
    """Cluster-robust (ratio-estimator) variance of the item mean over k groups, k/(k-1) corrected.

    The same number as statsmodels' OLS on a constant with `cov_type="cluster"` (checked in
    tests/test_verdict_stats.py); written out because the verdict calls it thousands of times
    in the calibration bench and a model fit per call costs ~1 ms for a one-line sum.
    """
    sums, sizes = np.bincount(codes, weights=x), np.bincount(codes).astype(float)
    k = sums.size
    if k < 2:
        return math.nan
    resid = sums - x.mean() * sizes
    return float(k / (k - 1) * np.sum(resid**2) / sizes.sum() ** 2)


def design_effect(values: Sequence[float], groups: Sequence[Any] | None) -> float:
    """Kish's design effect of the item mean: cluster-robust variance / simple-random-sampling variance.

    deff = Var_cluster(mean) / (s^2 / n), s^2 the item variance (ddof=1), floored at 1, so the
    effective number of items n / deff never exceeds n (Kish, Survey Sampling, 1965, §5.4).
    The variance ratio is used rather than 1 + (m - 1) * ICC because it needs no estimate of
    the intra-cluster correlation, holds for unequal group sizes and for non-binary scores,
    and is the quantity the effective n is defined by.

    1.0 without groups (or when every item is its own group) and when the items do not vary;
    n when all items are in one group (one independent observation). Raises ValueError on an
    empty list or when the number of group labels differs from the number of items.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no items to compute a design effect over")
    codes = _groups_index(groups, x.size)
    if codes is None:
        return 1.0
    if codes.max() == 0:
        return float(x.size)
    srs = float(x.var(ddof=1)) / x.size if x.size > 1 else 0.0
    if srs <= 0:
        return 1.0
    return max(1.0, _cluster_variance(x, codes) / srs)


def metric_interval(values: Sequence[float], confidence: float = 0.95, *, groups: Sequence[Any] | None = None,
                    seed: int = 0, n_resamples: int = 2000) -> Interval:
    """Two-sided interval of the mean of per-item scores.

    `values`: one score per item (shape (n,)); `groups`: one label per item or None.
    Binary scores (accuracy, exact match) without groups: Wilson. Otherwise a seeded
    percentile bootstrap (scipy); with `groups` (e.g. the document a question is about)
    whole groups are resampled, since items in a group are not independent, and the
    interval is then widened to at least the design-effect-adjusted interval (Kish's
    effective n = n / deff, `design_effect`): the Wilson interval at p on n / deff items for
    binary scores, mean ± z * sqrt(deff) * s / sqrt(n) otherwise. A cluster bootstrap has no
    spread when every group scores alike (60 groups each 4 of 5 right), yet the items vary.
    Raises ValueError on an empty list or mismatched groups.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no items to compute an interval over")
    codes = _groups_index(groups, x.size)
    binary = _binary(x)
    if codes is None and binary:
        return wilson_interval(int(x.sum()), int(x.size), confidence)
    low, high = _scipy_bootstrap(x, codes, confidence, seed, n_resamples)
    if codes is not None:
        deff = design_effect(x, groups)
        if binary:
            f_low, f_high = _wilson_effective(float(x.mean()), x.size / deff, confidence)
        else:
            half = sps.norm.ppf(0.5 + confidence / 2) * math.sqrt(deff * x.var(ddof=1) / x.size) if x.size > 1 else 0.0
            f_low, f_high = x.mean() - half, x.mean() + half
        low, high = min(low, f_low), max(high, f_high)
    return Interval(float(x.mean()), float(low), float(high), confidence)


def one_sided_bounds(values: Sequence[float], confidence: float = 0.95, *, groups: Sequence[Any] | None = None,
                     seed: int = 0) -> tuple[float, float]:
    """(lower, upper): each a one-sided bound of the mean at `confidence` (`metric_interval` at 2c - 1)."""
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


def _bootstrap_statistic_distribution(n: int, statistic: Callable[[np.ndarray], float], confidence: float,
                                      n_boot: int, seed: int, groups: Sequence[Any] | None
                                      ) -> tuple[float, float, float, np.ndarray]:
    """(full-sample value, low, high, bootstrap replicates) of a set statistic; with groups,
    whole groups are resampled (their items concatenated)."""
    full = float(statistic(np.arange(n)))
    codes = _groups_index(groups, n)
    if codes is None:
        units: list[np.ndarray] = [np.array([i]) for i in range(n)]
    else:
        units = [np.flatnonzero(codes == g) for g in range(int(codes.max()) + 1)]
    if len(units) < 2:
        return full, full, full, np.full(1, full)

    def over_units(ix: np.ndarray) -> float:
        return float(statistic(np.concatenate([units[i] for i in ix.astype(int)])))

    res = sps.bootstrap((np.arange(len(units)),), over_units, confidence_level=confidence, n_resamples=n_boot,
                        method="percentile", vectorized=False, random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval.low, res.confidence_interval.high
    if np.isnan(low):  # a statistic with no spread
        low = high = full
    return full, float(low), float(high), np.asarray(res.bootstrap_distribution, dtype=float)


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], float],
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    groups: Sequence[Any] | None = None,
) -> Interval:
    """Percentile bootstrap of any statistic of a set of items (e.g. macro-F1), via scipy.

    `statistic(indices)` computes the figure on the items at `indices` (an int array, with
    repeats). With `groups` (one label per item) whole groups are resampled.
    """
    full, low, high, _ = _bootstrap_statistic_distribution(n, statistic, confidence, n_boot, seed, groups)
    return Interval(full, low, high, confidence)


# -- paired comparisons -----------------------------------------------------------------------

TEST_MCNEMAR = "exact McNemar"
TEST_PAIRED_T = "paired t-test"
TEST_CLUSTER_T = "cluster-robust t-test on group totals (k-1 df)"
TEST_BOOTSTRAP = "paired bootstrap"
TEST_CLUSTER_BOOTSTRAP = "paired cluster bootstrap"
TEST_NONE = "no test: fewer than 2 groups"


@dataclass(frozen=True)
class PairedDifference:
    """mean(a) - mean(b) over the same items, a two-sided interval and the test's p-values.

    `p_value` is two-sided; `p_less` tests a worse than b (H1: mean(a) - mean(b) < 0),
    `p_greater` a better than b. `test` names the test. `mcnemar_p` (kept for old readers)
    is the exact McNemar p for ungrouped binary scores and None otherwise.
    """

    value: float
    low: float
    high: float
    confidence: float
    mcnemar_p: float | None  # binary scores without groups only
    n: int
    p_value: float = 1.0
    p_less: float = 1.0
    p_greater: float = 1.0
    test: str = TEST_MCNEMAR

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def mcnemar_exact(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Exact McNemar p-value for paired binary scores (1 = right) of independent items.

    Only the discordant pairs carry information: with b01 items right under `a` only and
    b10 under `b` only, p = binomtest(b01, b01 + b10, 0.5, alternative) (scipy), 1.0 when
    none differ. `alternative="less"`: a worse than b; "greater": a better than b.
    Not valid for grouped items (it assumes independent pairs: 17% false rejections at 5%
    under an intra-group correlation of 0.3); `paired_difference` uses a cluster test there.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    only_a, only_b = int(np.sum((x == 1) & (y == 0))), int(np.sum((x == 0) & (y == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5, alternative=alternative).pvalue)


def newcombe_paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided interval at `confidence` for mean(a) - mean(b), paired binary scores (1 = right).

    Newcombe (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Statistics in Medicine 17:2635-2650, method 10: each
    margin's Wilson score interval (statsmodels `proportion_confint(method="wilson")`) combined
    through the phi correlation of the 2x2 table, with Newcombe's correction of phi toward 0.
    Written here because neither scipy nor statsmodels offers a paired-proportions interval.
    It never has zero width while n is finite: with no discordant pair at all (two unchanged
    runs) it still says how large a difference the items cannot rule out.
    `a`, `b`: shape (n,), 0/1. Raises ValueError when the lengths differ or n == 0.
    """
    from statsmodels.stats.proportion import proportion_confint

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"paired scores need the same non-zero number of items, got {x.size} and {y.size}")
    n = x.size
    both, only_a = int(np.sum((x == 1) & (y == 1))), int(np.sum((x == 1) & (y == 0)))
    only_b, neither = int(np.sum((x == 0) & (y == 1))), int(np.sum((x == 0) & (y == 0)))
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    alpha = 1 - confidence
    l1, u1 = (float(v) for v in proportion_confint(both + only_a, n, alpha=alpha, method="wilson"))
    l2, u2 = (float(v) for v in proportion_confint(both + only_b, n, alpha=alpha, method="wilson"))
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    if denom == 0:
        phi = 0.0
    elif cross > 0:  # Newcombe's continuity correction shrinks a positive phi
        phi = max(cross - n / 2, 0.0) / math.sqrt(denom)
    else:
        phi = cross / math.sqrt(denom)
    theta = p1 - p2
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(theta - delta, -1.0), min(theta + eps, 1.0)


def _t_test(d: np.ndarray, se: float, df: float) -> tuple[float, float, float]:
    """(two-sided, less, greater) p-values of a t statistic mean(d) / se on df degrees of freedom."""
    mean = float(d.mean())
    if se <= 0 or not math.isfinite(se):
        if mean == 0:
            return 1.0, 1.0, 1.0
        return 0.0, (0.0 if mean < 0 else 1.0), (0.0 if mean > 0 else 1.0)
    t = mean / se
    less, greater = float(sps.t.cdf(t, df)), float(sps.t.sf(t, df))
    return min(1.0, 2 * min(less, greater)), less, greater


def _grouped_se(d: np.ndarray, codes: np.ndarray) -> float:
    """Cluster-robust standard error of mean(d), never below the one that ignores the groups."""
    srs = float(d.var(ddof=1)) / d.size if d.size > 1 else 0.0
    return math.sqrt(max(_cluster_variance(d, codes), srs))


def paired_test(a: Sequence[float], b: Sequence[float], *,
                groups: Sequence[Any] | None = None) -> tuple[float, float, float, str]:
    """(two-sided p, p that a is worse, p that a is better, test name) of paired scores.

    The test `paired_difference` reports, without its interval (no resampling: what a gate
    over many levers and simulations needs). Raises ValueError as `paired_difference` does.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"paired scores need the same non-zero number of items, got {x.size} and {y.size}")
    d = x - y
    codes = _groups_index(groups, d.size)
    if codes is not None:
        k = int(codes.max()) + 1
        if k < 2:
            return 1.0, 1.0, 1.0, TEST_NONE
        return (*_t_test(d, _grouped_se(d, codes), k - 1), TEST_CLUSTER_T)
    if _binary(x) and _binary(y):
        return mcnemar_exact(x, y), mcnemar_exact(x, y, "less"), mcnemar_exact(x, y, "greater"), TEST_MCNEMAR
    se = float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0
    return (*_t_test(d, se, d.size - 1), TEST_PAIRED_T)


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, *,
                      groups: Sequence[Any] | None = None, seed: int = 0,
                      n_resamples: int = 2000) -> PairedDifference:
    """Difference of two levers' per-item scores on the same items, with a paired test.

    `a`, `b`: shape (n,), aligned item by item (same example ids, same order); `groups`:
    one label per item or None. Returns mean(a) - mean(b), a two-sided interval at
    `confidence` and p-values (see PairedDifference; the test alone is `paired_test`):

    - no groups, binary scores: a paired percentile bootstrap interval (scipy) and the exact
      McNemar test (`mcnemar_exact`); where every resample gives the same difference (no item
      changed), Newcombe's paired interval instead (`newcombe_paired_interval`), never zero width;
    - no groups, other scores: the same interval and a paired t-test (n - 1 df);
    - groups: a cluster-robust t-test of the mean difference, i.e. a t-test on the group
      totals of the differences with the ratio-estimator standard error and k - 1 degrees of
      freedom (k groups; statsmodels' OLS with `cov_type="cluster"`, `use_t=True` gives the
      same numbers, see tests/test_verdict_stats.py), and the interval from the same t and
      standard error, so interval and test agree. The standard error is never below the
      one that ignores the groups (design effect >= 1, as in `metric_interval`). Chosen
      over a cluster-bootstrap p-value because it is deterministic, costs one pass over
      the items, and its k - 1 df keep it calibrated with tens of groups where a
      percentile bootstrap is too narrow (bench/verdict_calibration.py). No McNemar p
      here: McNemar assumes independent pairs. Binary scores whose group totals all differ
      alike (standard error 0) get Newcombe's interval too. With fewer than 2 groups nothing can be
      tested: the interval is the range of the differences and every p is 1.

    Raises ValueError when the lengths differ or there are no items.
    """
    p, less, greater, test = paired_test(a, b, groups=groups)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    n, mean = int(d.size), float(d.mean())
    codes = _groups_index(groups, n)
    if codes is not None:
        k = int(codes.max()) + 1
        if k < 2:
            return PairedDifference(mean, float(d.min()), float(d.max()), confidence, None, n, p, less, greater, test)
        se = _grouped_se(d, codes)
        half = float(sps.t.ppf(0.5 + confidence / 2, k - 1)) * se
        low, high = mean - half, mean + half
        if se == 0 and _binary(x) and _binary(y):  # every difference equal: not a zero-width interval
            low, high = newcombe_paired_interval(x, y, confidence)
        return PairedDifference(mean, low, high, confidence, None, n, p, less, greater, test)
    low, high = _scipy_bootstrap(d, None, confidence, seed, n_resamples)
    if low == high and _binary(x) and _binary(y):
        # Every resample is the same (no item changed, or every one did the same way): the items
        # cannot rule out every other difference; Newcombe's interval says which they can.
        low, high = newcombe_paired_interval(x, y, confidence)
    mcnemar = p if test == TEST_MCNEMAR else None
    return PairedDifference(mean, low, high, confidence, mcnemar, n, p, less, greater, test)


def paired_statistic_difference(n: int, difference: Callable[[np.ndarray], float], confidence: float = 0.95, *,
                                groups: Sequence[Any] | None = None, seed: int = 0,
                                n_resamples: int = 1000) -> PairedDifference:
    """A set statistic's difference between two levers on the same items (e.g. macro-F1 of a minus b).

    `difference(indices) -> float` computes the statistic of a minus that of b on the items
    at `indices` (an int array with repeats), so both are resampled together (paired).
    Percentile bootstrap (scipy), whole groups resampled with `groups`. The p-values invert
    the percentile interval (Efron & Tibshirani 1993, §15.4): p_less = (1 + #{d* >= 0}) /
    (B + 1) is below alpha exactly when the one-sided upper bound at 1 - alpha is below 0;
    p_greater likewise; p_value = min(1, 2 min(p_less, p_greater)).
    Raises ValueError when n < 1.
    """
    if n < 1:
        raise ValueError("no items to compare")
    full, low, high, reps = _bootstrap_statistic_distribution(n, difference, confidence, n_resamples, seed, groups)
    b = reps.size
    less = (1 + int(np.sum(reps >= 0))) / (b + 1)
    greater = (1 + int(np.sum(reps <= 0))) / (b + 1)
    test = TEST_CLUSTER_BOOTSTRAP if _groups_index(groups, n) is not None else TEST_BOOTSTRAP
    return PairedDifference(full, low, high, confidence, None, n, min(1.0, 2 * min(less, greater)), less, greater,
                            test)


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`.

    `p_values`: name -> unadjusted p-value. Returns name -> rejected, same keys; {} for {}.
    Holm (1979) via `statsmodels.stats.multitest.multipletests(method="holm")`: controls the
    chance of rejecting any true null among them at `alpha`, under any dependence.
    Raises ValueError when alpha is not in (0, 1).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not p_values:
        return {}
    if len(p_values) == 1:  # Holm over one hypothesis is the test itself (and skips the gc.collect below)
        return {k: float(p) <= alpha for k, p in p_values.items()}
    # multipletests runs gc.collect() on every Holm call (~90 ms with scipy and statsmodels
    # loaded); a caller looping over thousands of families (the calibration bench) can
    # gc.freeze() first.
    from statsmodels.stats.multitest import multipletests

    names = list(p_values)
    reject = multipletests([float(p_values[k]) for k in names], alpha=alpha, method="holm")[0]
    return {k: bool(r) for k, r in zip(names, reject)}


# -- how many items would settle it -----------------------------------------------------------


def _wilson_rule_power(p: float, n: int, threshold: float, confidence: float) -> float:
    """Exact chance, under Binomial(n, p), that the one-sided Wilson bound at `confidence`
    settles the call: the lower bound clears `threshold` (p above it) or the upper bound
    falls below it (p below). The verdict's own rule, summed over every count (scipy pmf,
    statsmodels Wilson)."""
    from statsmodels.stats.proportion import proportion_confint

    k = np.arange(n + 1)
    low, high = proportion_confint(k, n, alpha=2 * (1 - confidence), method="wilson")
    settles = low >= threshold if p > threshold else high < threshold
    return float(sps.binom.pmf(k[settles], n, p).sum())


# Above this many effective items the exact search is skipped: the normal approximation's
# sawtooth error in power shrinks like 1/sqrt(n) and each exact step costs O(n).
_EXACT_SEARCH_MAX = 20_000


def total_items_needed(value: float, threshold: float, confidence: float = 0.95, power: float = POWER, *,
                       binary: bool = True, std: float | None = None, design_effect: float = 1.0) -> int | None:
    """Total eval items at which a lever whose true score is `value` would be settled against
    `threshold` (its one-sided bound at `confidence` on the right side of it) with chance `power`.

    Binary scores (accuracy, exact match): the one-sample power calculation of statsmodels,
    `NormalIndPower().solve_power(effect_size=|proportion_effectsize(value, threshold)|,
    alpha=1 - confidence, power=power, ratio=0, alternative="larger")` (Cohen's h, arcsine
    scale). Two corrections, since the verdict's rule is a Wilson bound on a whole count:
    (1) never fewer items than the score test behind Wilson needs to clear the threshold at
    the observed rate itself, z^2 t (1 - t) / (value - t)^2 — the arcsine scale puts 20 of 20
    against 0.90 at 15 items, while 25 all right are needed for the Wilson bound to reach
    0.90; (2) up to 20,000 effective items, the smallest count from there whose exact
    binomial power under the Wilson rule reaches `power` (the approximation's 1,035 items at
    0.83 against 0.80 give 78.6%, a sawtooth of the discrete count; checked by simulation in
    tests/test_verdict_stats.py).

    Other scores: effect size |value - threshold| / std, `std` the per-item standard
    deviation (required, > 0), same statsmodels call (a one-sample z-test of the mean).

    Groups: pass Kish's `design_effect` (`design_effect(values, groups)`); the items needed
    are the effective items times it (values below 1 count as 1).

    Returns None only when value == threshold (no size settles a lever exactly on it).
    Raises ValueError for confidence or power outside (0, 1), a binary value or threshold
    outside [0, 1], or a non-binary metric without a positive std.
    """
    if not 0 < confidence < 1 or not 0 < power < 1:
        raise ValueError(f"confidence and power must be in (0, 1), got {confidence} and {power}")
    gap = value - threshold
    if gap == 0:
        return None
    from statsmodels.stats.power import NormalIndPower

    alpha = 1 - confidence
    deff = max(1.0, float(design_effect))
    if binary:
        if not (0 <= value <= 1 and 0 <= threshold <= 1):
            raise ValueError(f"a proportion and its threshold must be in [0, 1], got {value} and {threshold}")
        from statsmodels.stats.proportion import proportion_effectsize

        h = abs(float(proportion_effectsize(value, threshold)))
        with warnings.catch_warnings():  # solve_power warns on the way to huge effects' tiny n
            warnings.simplefilter("ignore")
            approx = float(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=0,
                                                        alternative="larger"))
        z = float(sps.norm.ppf(confidence))
        floor = z * z * threshold * (1 - threshold) / gap**2
        n_eff = max(1, math.ceil(max(approx, floor) - 1e-9))
        if n_eff <= _EXACT_SEARCH_MAX:
            start = n_eff
            while n_eff < 2 * start + 50 and _wilson_rule_power(value, n_eff, threshold, confidence) < power:
                n_eff += 1
    else:
        if std is None or not std > 0:
            raise ValueError(f"a non-binary metric needs its per-item standard deviation (> 0), got {std}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            approx = float(NormalIndPower().solve_power(effect_size=abs(gap) / std, alpha=alpha, power=power,
                                                        ratio=0, alternative="larger"))
        n_eff = max(2, math.ceil(approx - 1e-9))
    return int(math.ceil(n_eff * deff - 1e-9))


def std_error(values: Sequence[float], groups: Sequence[Any] | None = None) -> float:
    """Standard error of the item mean; with groups, the cluster-robust (ratio-estimator) one."""
    x = np.asarray(values, dtype=float)
    codes = _groups_index(groups, x.size)
    if codes is None:
        return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    v = _cluster_variance(x, codes)
    return float(math.sqrt(v)) if math.isfinite(v) else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0


# -- a figure against a threshold ----------------------------------------------------------------

RULES = ("lower_bound", "point")


def lever_state(value: float, lower: float, upper: float, threshold: float, rule: str) -> str:
    """"meets", "fails" or "undecided" from the point estimate and one-sided bounds.

    Raises ValueError for a rule outside RULES.
    """
    if rule not in RULES:
        raise ValueError(f"target.rule must be one of {', '.join(RULES)}, got {rule!r}")
    if (lower if rule == "lower_bound" else value) >= threshold:
        return "meets"
    return "fails" if upper < threshold else "undecided"
