"""advisor.stats against scipy and hand computations on fixed data, and the decision rule's calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from advisor.stats import (
    items_needed,
    mcnemar_exact,
    metric_interval,
    one_sided_bounds,
    paired_difference,
    std_error,
    wilson_interval,
)
from advisor.verdict_rules import assess, lever_state


def _wilson_by_hand(k: int, n: int, conf: float) -> tuple[float, float]:
    z = sps.norm.ppf(1 - (1 - conf) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n,conf", [(249, 300, 0.95), (87, 300, 0.95), (0, 20, 0.9), (20, 20, 0.99)])
def test_wilson_interval_matches_the_textbook_formula(k, n, conf):
    iv = wilson_interval(k, n, conf)
    low, high = _wilson_by_hand(k, n, conf)
    assert iv.value == pytest.approx(k / n)
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=1e-9)
    # TREC's lora, 249 of 300 right: the README showed a bootstrap 0.787–0.870; Wilson says 0.783–0.868.
    if (k, n) == (249, 300):
        assert (round(iv.low, 3), round(iv.high, 3)) == (0.783, 0.868)


def test_binary_scores_use_wilson_and_one_sided_bounds_are_the_90_percent_interval():
    values = [1.0] * 249 + [0.0] * 51
    assert metric_interval(values, 0.95) == wilson_interval(249, 300, 0.95)
    low, high = one_sided_bounds(values, 0.95)
    assert (low, high) == pytest.approx(_wilson_by_hand(249, 300, 0.90))


def test_non_binary_scores_use_scipy_bootstrap_with_the_same_draws():
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 1, size=80).round(3)
    iv = metric_interval(values, 0.95, seed=11)
    ref = sps.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                        random_state=np.random.default_rng(11))
    assert iv.value == pytest.approx(values.mean())
    # Same percentile method, same number of draws: the same interval up to resampling noise.
    assert iv.low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert iv.high == pytest.approx(ref.confidence_interval.high, abs=0.01)
    assert metric_interval(values, 0.95, seed=11) == iv  # seeded


def test_mcnemar_exact_by_hand_and_paired_difference():
    # 10 items right only under a, 2 only under b, 88 the same: p = 2 * P(X <= 2), X ~ Bin(12, 1/2).
    a = [1.0] * 10 + [0.0] * 2 + [1.0] * 50 + [0.0] * 38
    b = [0.0] * 10 + [1.0] * 2 + [1.0] * 50 + [0.0] * 38
    expected = 2 * sum(math.comb(12, i) for i in range(3)) / 2**12
    assert mcnemar_exact(a, b) == pytest.approx(expected)
    assert mcnemar_exact(a, a) == 1.0
    d = paired_difference(a, b, 0.95)
    assert d.value == pytest.approx(0.08) and d.mcnemar_p == pytest.approx(expected)
    assert 0 < d.low < 0.08 < d.high
    # Pairing removes what the items share: the unpaired intervals of a and b overlap widely.
    ia, ib = metric_interval(a), metric_interval(b)
    assert ia.low < ib.high and (d.high - d.low) < (ia.high - ia.low)
    with pytest.raises(ValueError, match="same non-zero number"):
        paired_difference(a, b[:-1])


def test_cluster_bootstrap_with_perfectly_correlated_groups():
    # 10 groups of 10 items; every item in a group has the same score. The eval set holds
    # 10 independent observations, not 100: the interval must be that of 10 group scores.
    group_scores = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    values = [s for s in group_scores for _ in range(10)]
    groups = [g for g in range(10) for _ in range(10)]
    clustered = metric_interval(values, 0.95, groups=groups, seed=3)
    per_group = metric_interval(group_scores, 0.95, groups=list(range(10)), seed=3)  # ungrouped path: Wilson
    naive = metric_interval(values, 0.95)
    ref = sps.bootstrap((np.asarray(group_scores),), np.mean, confidence_level=0.95, n_resamples=2000,
                        method="percentile", random_state=np.random.default_rng(3))
    assert clustered.value == pytest.approx(0.7)
    assert clustered.low == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert clustered.high == pytest.approx(ref.confidence_interval.high, abs=0.02)
    assert per_group == wilson_interval(7, 10)
    assert (clustered.high - clustered.low) > 1.8 * (naive.high - naive.low)  # naive is far too narrow
    assert std_error(values, groups) == pytest.approx(np.std(group_scores, ddof=1) / math.sqrt(10))
    # Paired differences resample whole groups too.
    other = [1.0 - v for v in values]
    d = paired_difference(values, other, 0.95, groups=groups, seed=3)
    assert d.value == pytest.approx(0.4) and d.high - d.low > 0.5


def test_items_needed_is_the_normal_approximation_power_calculation():
    se = math.sqrt(0.83 * 0.17 / 300)
    z = sps.norm.ppf(0.95) + sps.norm.ppf(0.80)
    assert items_needed(0.83, 0.80, se, 300, 0.95) == math.ceil(300 * (z * se / 0.03) ** 2)
    assert items_needed(0.80, 0.80, se, 300) is None


def test_trec_lora_figure_is_undecided_under_the_lower_bound_rule():
    # README: lora 0.830 on 300 items against 0.80. Point rule: meets. Lower-bound rule: not yet shown.
    values = [1.0] * 249 + [0.0] * 51
    lb = assess(values, 0.80, 0.95, "lower_bound")
    point = assess(values, 0.80, 0.95, "point")
    assert point["state"] == "meets" and point["items_needed"] is None
    assert lb["state"] == "undecided" and lb["lower_bound"] < 0.80 < lb["upper_bound"]
    assert 300 < lb["items_needed"] < 1500
    assert assess([1.0] * 87 + [0.0] * 213, 0.80, 0.95, "lower_bound")["state"] == "fails"
    with pytest.raises(ValueError, match="target.rule"):
        lever_state(0.9, 0.8, 0.95, 0.8, "best-guess")


def test_lower_bound_rule_is_calibrated_and_the_point_rule_is_not():
    """A lever whose true accuracy sits just below the threshold must rarely be called "meets"."""
    rng = np.random.default_rng(0)
    n, truth, threshold, confidence, draws = 300, 0.79, 0.80, 0.95, 4000
    successes = rng.binomial(n, truth, size=draws)
    lower = {k: wilson_interval(int(k), n, 2 * confidence - 1).low for k in np.unique(successes)}
    lb_claims = np.mean([lower[k] >= threshold for k in successes])
    point_claims = np.mean(successes / n >= threshold)
    assert lb_claims <= (1 - confidence) + 0.01
    assert point_claims > 0.3  # the point rule says "meets" about a third of the time
