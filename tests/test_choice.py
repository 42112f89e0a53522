"""The paired rule behind every choice a run makes on held-out items (advisor/choice.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from advisor.choice import RULE_BOOTSTRAP, RULE_MCNEMAR, choose_paired


def _pair(n: int, both: int, only_a: int, only_b: int) -> tuple[list[float], list[float]]:
    """Per-item 0/1 scores of a and b on n items: both right, only a right, only b right, rest both wrong."""
    a = [1.0] * both + [1.0] * only_a + [0.0] * only_b
    b = [1.0] * both + [0.0] * only_a + [1.0] * only_b
    a += [0.0] * (n - len(a))
    b += [0.0] * (n - len(b))
    return a, b


def test_a_one_item_win_on_40_dev_items_keeps_the_default():
    default, other = _pair(40, 10, 0, 1)  # other wins one more item: 11/40 against 10/40
    choice = choose_paired("default", {"default": default, "other": other}, metric="accuracy")
    assert choice.chosen == "default" and not choice.switched
    assert choice.scores == {"default": 0.25, "other": 0.275}
    assert choice.wins["other"] == [1, 0]
    assert choice.p_values["other"] == 1.0
    assert choice.rule == RULE_MCNEMAR


def test_a_clear_win_switches_and_the_p_value_is_exact_mcnemar():
    default, other = _pair(40, 5, 0, 12)  # 12 discordant items, all for `other`
    choice = choose_paired("default", {"default": default, "other": other}, metric="accuracy")
    assert choice.chosen == "other" and choice.switched
    assert choice.p_values["other"] == pytest.approx(sps.binomtest(12, 12, 0.5).pvalue)


def test_holm_adjustment_over_several_candidates():
    """p = 0.0213 alone switches at 5%; with three candidates Holm multiplies the smallest by 3."""
    base = [0.0] * 40
    strong = [1.0] * 8 + [0.0] * 32  # 8-0 discordant: p = 2/2^8 = 0.0078
    weak = [1.0] * 7 + [0.0] * 33  # 7-0: p = 0.0156
    alone = choose_paired("default", {"default": base, "weak": weak}, metric="accuracy")
    assert alone.chosen == "weak"
    three = choose_paired("default", {"default": base, "weak": weak, "strong": strong, "none": base},
                          metric="accuracy")
    assert three.p_values["strong"] == pytest.approx(3 * 2 / 2**8)
    assert three.p_values["weak"] == pytest.approx(2 * 2 / 2**7)  # Holm: the second smallest times 2
    assert three.chosen == "strong"  # both pass; the better held-out value wins


def test_a_significant_loss_never_switches():
    default, other = _pair(40, 0, 12, 0)
    assert choose_paired("default", {"default": default, "other": other}, metric="accuracy").chosen == "default"


def test_set_statistics_use_a_paired_bootstrap():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    good = truth.copy()
    bad = np.where(rng.random(200) < 0.5, truth, 1 - truth)

    def acc(preds):
        return lambda idx: float(np.mean(preds[idx] == truth[idx]))

    choice = choose_paired("bad", metric="macro_f1", set_statistic={"bad": acc(bad), "good": acc(good)}, n=200)
    assert choice.rule == RULE_BOOTSTRAP and choice.chosen == "good"
    assert choice.lower_bounds["good"] > 0
    same = choose_paired("bad", metric="macro_f1", set_statistic={"bad": acc(bad), "copy": acc(bad)}, n=200)
    assert same.chosen == "bad"


def test_the_default_must_be_a_candidate():
    with pytest.raises(ValueError, match="default"):
        choose_paired("missing", {"a": [1.0]}, metric="accuracy")
    with pytest.raises(ValueError, match="needs per-item scores"):
        choose_paired("a", metric="accuracy")


@pytest.mark.parametrize("n", [0, 1, 5])
def test_too_few_items_keep_the_default_and_say_so(n):
    """Field case 16: a macro-F1 target with 3 train items leaves a 1-item dev split; the bootstrap
    cannot resample one item. Nothing is tested, the default stands, and the record says why."""
    def f1(idx):
        return float(len(idx))

    got = choose_paired("calibrated", metric="macro_f1", set_statistic={"calibrated": f1, "sum": f1}, n=n)
    assert got.chosen == "calibrated" and not got.switched and got.rule.startswith("too few held-out items")
    per_item = choose_paired("calibrated", {"calibrated": [0.0] * n, "sum": [1.0] * n}, metric="accuracy")
    assert per_item.chosen == "calibrated" and per_item.n == n
