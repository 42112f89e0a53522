"""advisor.stats against scipy and hand computations on fixed data, and the decision rule's calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from advisor.stats import (
    TEST_CLUSTER_T,
    TEST_MCNEMAR,
    design_effect,
    holm,
    mcnemar_exact,
    metric_interval,
    one_sided_bounds,
    paired_difference,
    std_error,
    total_items_needed,
    wilson_interval,
)
from advisor.verdict import assess, lever_state


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


def test_trec_lora_figure_is_undecided_under_the_lower_bound_rule():
    # README: lora 0.830 on 300 items against 0.80. Point rule: meets. Lower-bound rule: not yet shown.
    values = [1.0] * 249 + [0.0] * 51
    lb = assess(values, 0.80, 0.95, "lower_bound")
    point = assess(values, 0.80, 0.95, "point")
    assert point.state == "meets" and point.more_items_needed is None
    assert lb.state == "undecided" and lb.lower_bound < 0.80 < lb.upper_bound
    assert 300 < lb.more_items_needed < 1500
    assert assess([1.0] * 87 + [0.0] * 213, 0.80, 0.95, "lower_bound").state == "fails"
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


# -- issue 28: statistics that hold under grouping --------------------------------------------


def test_sixty_groups_each_four_of_five_right_do_not_meet_080():
    """Issue 28: the cluster bootstrap of 60 groups each 4/5 right had zero width, and the lever
    "met" 0.80 at exactly 0.80. The design-effect-adjusted Wilson interval is its floor."""
    values = [1.0, 1.0, 1.0, 1.0, 0.0] * 60
    groups = [g for g in range(60) for _ in range(5)]
    iv = metric_interval(values, 0.95, groups=groups, seed=0)
    assert iv.value == pytest.approx(0.8) and iv.high - iv.low > 0.05
    low, high = one_sided_bounds(values, 0.95, groups=groups)
    assert low < 0.80 < high
    # Every group scores alike, so the design effect is floored at 1: Wilson on all 300 items.
    assert design_effect(values, groups) == 1.0
    assert low == pytest.approx(wilson_interval(240, 300, 0.90).low)
    assert assess(values, 0.80, 0.95, "lower_bound", groups=groups).state == "undecided"


def test_design_effect_is_the_cluster_to_srs_variance_ratio_and_widens_the_interval():
    rng = np.random.default_rng(5)
    rates = rng.beta(1.867, 0.467, size=60)  # beta-binomial, mean 0.8, intra-group correlation 0.3
    values = (rng.random((60, 5)) < rates[:, None]).astype(float).ravel()
    groups = np.repeat(np.arange(60), 5)
    x = values
    srs = x.var(ddof=1) / x.size
    assert design_effect(values, groups) == pytest.approx(max(1.0, std_error(values, groups) ** 2 / srs))
    assert 1.5 < design_effect(values, groups) < 4  # 1 + (5 - 1) * 0.3 = 2.2 in expectation
    # std_error with groups is statsmodels' cluster-robust standard error of the mean.
    import statsmodels.api as sm

    fit = sm.OLS(x, np.ones_like(x)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    assert std_error(values, groups) == pytest.approx(float(fit.bse[0]), rel=1e-9)
    grouped, naive = metric_interval(values, 0.95, groups=groups), metric_interval(values, 0.95)
    assert grouped.high - grouped.low > 1.3 * (naive.high - naive.low)
    assert design_effect(values, None) == 1.0 and design_effect([1.0, 0.0, 1.0], ["a"] * 3) == 3.0
    with pytest.raises(ValueError, match="group labels"):
        design_effect(values, groups[:-1])


def test_grouped_paired_difference_is_the_cluster_robust_t_test_and_names_it():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 5)
    a = (rng.random(200) < 0.8).astype(float)
    b = (rng.random(200) < 0.7).astype(float)
    d = paired_difference(a, b, 0.95, groups=groups)
    import statsmodels.api as sm

    fit = sm.OLS(a - b, np.ones(200)).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    assert d.test == TEST_CLUSTER_T and d.mcnemar_p is None
    assert d.p_value == pytest.approx(float(fit.pvalues[0]), rel=1e-6)
    lo, hi = fit.conf_int(0.05)[0]
    assert (d.low, d.high) == pytest.approx((lo, hi), rel=1e-6)
    assert d.p_greater == pytest.approx(d.p_value / 2) and d.p_less == pytest.approx(1 - d.p_value / 2)
    # The interval and the test agree: 0 is outside the 95% interval exactly when p < 0.05.
    for conf in (0.5, 0.8, 0.9, 0.95, 0.99):
        iv = paired_difference(a, b, conf, groups=groups)
        assert (iv.low > 0 or iv.high < 0) == (iv.p_value < 1 - conf)
    # One group: nothing can be tested.
    one = paired_difference(a, b, 0.95, groups=["g"] * 200)
    assert one.p_value == one.p_less == one.p_greater == 1.0 and one.low <= one.value <= one.high


def test_ungrouped_binary_keeps_exact_mcnemar_and_adds_one_sided_p_values():
    a = [1.0] * 10 + [0.0] * 2 + [1.0] * 50 + [0.0] * 38
    b = [0.0] * 10 + [1.0] * 2 + [1.0] * 50 + [0.0] * 38
    d = paired_difference(a, b, 0.95)
    assert d.test == TEST_MCNEMAR and d.p_value == d.mcnemar_p == pytest.approx(mcnemar_exact(a, b))
    assert d.p_greater == pytest.approx(sps.binomtest(10, 12, 0.5, alternative="greater").pvalue)
    assert d.p_less == pytest.approx(sps.binomtest(10, 12, 0.5, alternative="less").pvalue)
    assert d.as_dict() == {"value": d.value, "ci_low": d.low, "ci_high": d.high}
    t = paired_difference([0.5, 0.7, 0.9, 0.4], [0.4, 0.6, 0.6, 0.5])
    assert t.mcnemar_p is None and t.p_value == pytest.approx(
        sps.ttest_1samp([0.1, 0.1, 0.3, -0.1], 0).pvalue)


def test_twenty_of_twenty_against_090_needs_25_items_not_none():
    """Issue 28: the old formula used the sample SD, 0 for 20/20, and returned None."""
    n = total_items_needed(1.0, 0.90)
    assert n == 25
    assert one_sided_bounds([1.0] * n, 0.95)[0] >= 0.90 > one_sided_bounds([1.0] * (n - 1), 0.95)[0]
    assert total_items_needed(0.80, 0.80) is None
    assert total_items_needed(0.0, 0.10) == 25  # the same, to show it fails


def test_total_items_needed_has_the_power_it_claims_under_the_verdicts_rule():
    """At 249/300 against 0.80 the old formula claimed 973 items (78% power). Simulate the
    verdict's rule ("meets" when the one-sided 95% Wilson lower bound clears 0.80) at the
    returned size with the true rate 0.83: the power is 0.80 up to Monte-Carlo error."""
    n = total_items_needed(249 / 300, 0.80, 0.95, 0.80)
    assert 1000 < n < 1100
    rng = np.random.default_rng(28)
    successes = rng.binomial(n, 0.83, size=2000)
    lower = {int(k): one_sided_bounds(np.r_[np.ones(k), np.zeros(n - k)], 0.95)[0] for k in np.unique(successes)}
    power = np.mean([lower[int(k)] >= 0.80 for k in successes])
    assert power >= 0.78, power
    # The statsmodels calculation behind it (Cohen's h, one-sample).
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    approx = NormalIndPower().solve_power(effect_size=proportion_effectsize(0.83, 0.80), alpha=0.05, power=0.8,
                                          ratio=0, alternative="larger")
    assert math.ceil(approx) <= n <= math.ceil(approx) + 20


def test_total_items_needed_for_non_binary_scores_and_groups():
    z = sps.norm.ppf(0.95) + sps.norm.ppf(0.80)
    assert total_items_needed(0.6, 0.5, binary=False, std=0.3) == math.ceil((z * 0.3 / 0.1) ** 2)
    flat = total_items_needed(0.83, 0.80)
    assert total_items_needed(0.83, 0.80, design_effect=2.2) == math.ceil(flat * 2.2)
    assert total_items_needed(0.83, 0.80, design_effect=0.5) == flat  # never below 1
    with pytest.raises(ValueError, match="standard deviation"):
        total_items_needed(0.6, 0.5, binary=False)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        total_items_needed(1.2, 0.5)


def test_holm_matches_statsmodels_and_the_step_down_by_hand():
    p = {"a": 0.01, "b": 0.04, "c": 0.03}
    # Sorted 0.01 <= 0.05/3: rejected; 0.03 > 0.05/2: stop.
    assert holm(p, 0.05) == {"a": True, "b": False, "c": False}
    assert holm({"a": 0.01, "b": 0.02}, 0.05) == {"a": True, "b": True}
    assert holm({}, 0.05) == {}
    with pytest.raises(ValueError, match="alpha"):
        holm(p, 1.5)


def test_unchanged_runs_get_newcombes_paired_interval_not_a_zero_width_one():
    """Two runs that agree on every item: the bootstrap's resamples are all 0, but 6 items cannot
    rule out a difference of 0.39 either way. Newcombe's method 10 (Wilson margins, phi-corrected)
    gives the interval; with groups the degenerate cluster t does too. The test (McNemar p = 1) is
    unchanged."""
    from statsmodels.stats.proportion import proportion_confint

    from advisor.stats import newcombe_paired_interval, paired_difference

    same = [1, 1, 0, 1, 0, 1]
    d = paired_difference(same, same)
    assert d.value == 0 and d.p_value == 1.0 and d.low < -0.25 and d.high > 0.25 and d.low == pytest.approx(-d.high)
    grouped = paired_difference(same, same, groups=["a", "a", "b", "b", "c", "c"])
    assert (grouped.low, grouped.high) == pytest.approx((d.low, d.high))
    # Every item right in both runs: phi is 0 (an empty margin), each margin's upper Wilson bound is 1,
    # so the interval is minus and plus the distance from 1 to the Wilson lower bound of 6 of 6.
    low6 = float(proportion_confint(6, 6, alpha=0.05, method="wilson")[0])
    assert newcombe_paired_interval([1] * 6, [1] * 6) == pytest.approx((-(1 - low6), 1 - low6))


def test_newcombe_paired_interval_covers_at_its_level_by_simulation():
    """Coverage of the 95% interval on correlated paired proportions (n = 40, truth 0.80 vs 0.70,
    the two runs sharing item difficulty), 2,000 sets: at least 0.93 (Newcombe reports 0.95ish)."""
    from advisor.stats import newcombe_paired_interval

    rng = np.random.default_rng(7)
    n, sims, hits = 40, 2000, 0
    for _ in range(sims):
        u = rng.normal(0, 1, n)  # shared difficulty: the runs' answers correlate
        a = (u + rng.normal(0, 0.8, n) > -0.8416 * (1 + 0.64) ** 0.5).astype(float)
        b = (u + rng.normal(0, 0.8, n) > -0.5244 * (1 + 0.64) ** 0.5).astype(float)
        low, high = newcombe_paired_interval(a, b)
        hits += low <= 0.10 <= high
    assert hits / sims >= 0.93
