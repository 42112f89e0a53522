"""A rubric criterion as target.metric: the verdict decides on PPI++ bounds with human grades, on the
judge's own Wilson bounds without (saying so), and refuses to decide when the judge disagrees with people."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.errors import InputError
from advisor.judge.decision import assess_criterion, criterion_evidence, two_level_bounds
from advisor.record import CostRecord, MetricRecord, TargetRecord
from advisor.stats import metric_interval
from advisor.verdict import LeverEvidence, decide
from tests.test_judge import RUBRIC, SUPPORT, line_of, parse, support_text

COST = CostRecord(setup_usd=0, per_1k_queries_usd=0.1, latency_ms_p50=None, latency_ms_p95=None,
                  upkeep_usd_per_month=0, monthly_usd=2.0, first_year_usd=24.0, tokens_in_mean=0,
                  tokens_out_mean=0, compute_s_per_query=0, setup_seconds=0)
TARGET = TargetRecord(metric="owns_problem", threshold=0.7, confidence=0.95, rule="lower_bound", margin=0.0,
                      need="test")


def evidence(name, grades, human, *, min_kappa=0.6, samples=None):
    ids = [f"e{i}" for i in range(len(grades))]
    ev = criterion_evidence("owns_problem", dict(zip(ids, grades)), {ids[i]: g for i, g in human.items()},
                            confidence=0.95, min_kappa=min_kappa,
                            samples=None if samples is None else dict(zip(ids, samples)))
    scored = [g for g in grades if g is not None]
    metrics = {"owns_problem": MetricRecord(**metric_interval(scored, 0.95).as_dict())}
    return LeverEvidence(name, 0, "prompt", len(grades), metrics, COST, {}, [None] * len(grades), criterion=ev)


def test_judge_only_decides_on_wilson_bounds_and_says_so():
    grades = [1.0] * 95 + [None] * 5
    v = decide(TARGET, [evidence("prompt", grades, {})], None, golds=[None] * 100)
    lv = v.levers["prompt"]
    assert lv.state == "meets" and v.record.outcome == "recommend"
    assert "judge only, not checked against people" in lv.basis
    assert "5 of 100 judge grades unscored" in lv.basis  # counted, never a pass or a fail
    lo, hi = metric_interval([1.0] * 95, 0.90).as_dict()["ci_low"], 1.0
    assert lv.lower_bound == pytest.approx(lo)
    assert hi >= lv.upper_bound


def test_refused_criterion_is_never_decided():
    # People grade the opposite of the judge on every item they graded: kappa -1, refused.
    grades = [1.0 if i % 2 else 0.0 for i in range(30)] + [1.0] * 30
    human = {i: (0.0 if i % 2 else 1.0) for i in range(30)}  # people say the opposite on every item
    v = decide(TARGET, [evidence("prompt", grades, human)], None, golds=[None] * 60)
    lv = v.levers["prompt"]
    assert lv.state == "undecided" and v.record.outcome == "undecided"
    assert "disagrees with people" in lv.basis and "min_kappa 0.6" in lv.basis and "kappa -1.00" in lv.basis
    assert "disagrees with people" in v.record.reason and "eval items" not in v.record.next_step


def test_unsettled_says_how_many_more_human_grades():
    rng = np.random.default_rng(0)
    grades = [float(x) for x in rng.random(80) < 0.8]
    human = {i: (grades[i] if i % 4 else 1 - grades[i]) for i in range(12)}  # agrees on 3 in 4
    ev = evidence("prompt", grades, human).criterion
    assert ev.agreement.state == "unsettled"
    state, _, _, basis = assess_criterion(ev, 0.7, "lower_bound")
    assert state == "undecided"
    assert f"about {ev.agreement.more_grades} more human grades" in basis


def test_trusted_judge_decides_on_ppi_bounds():
    rng = np.random.default_rng(1)
    grades = [float(x) for x in rng.random(400) < 0.9]
    human = dict(enumerate(grades[:60]))  # people agree with the judge on all 60 graded items
    ev = evidence("prompt", grades, human).criterion
    assert ev.agreement.state == "trusted" and ev.ppi is not None
    state, lo, hi, basis = assess_criterion(ev, 0.8, "lower_bound")
    assert (lo, hi) == (ev.ppi.lower_bound, ev.ppi.upper_bound)
    assert "PPI++" in basis and "60 human grades" in basis and state == "meets"
    human_only = ev.ppi.human_only[1] - ev.ppi.human_only[0]
    assert ev.ppi.width < human_only  # the judge's 340 extra grades narrow the interval


def test_paired_comparison_uses_items_both_rows_scored():
    a = evidence("prompt", [1.0] * 90 + [None] * 10, {})
    b = evidence("prompt-few-shot", [None] * 10 + [1.0] * 40 + [0.0] * 50, {})
    v = decide(TARGET, [a, b], None, golds=[None] * 100)
    assert v.record.lever == "prompt"
    comp = v.record.comparisons[0]
    assert (comp.lever, comp.against) == ("prompt-few-shot", "prompt")
    assert comp.difference.value == pytest.approx(40 / 80 - 1.0)  # over the 80 items both scored


def test_two_level_bounds_widen_with_judge_noise():
    steady = [[1.0, 1.0, 1.0]] * 40 + [[0.0, 0.0, 0.0]] * 10
    noisy = [[1.0, 0.0, 1.0]] * 40 + [[0.0, 1.0, 0.0]] * 10
    lo_s, hi_s = two_level_bounds(steady, 0.95)
    lo_n, hi_n = two_level_bounds(noisy, 0.95)
    assert hi_n - lo_n > hi_s - lo_s
    with pytest.raises(ValueError):
        two_level_bounds([[None], [None]], 0.95)


def test_criterion_is_a_target_metric_and_gold_is_optional():
    text = support_text().replace("metric: pass_all", "metric: owns_problem")
    task = parse(text)
    assert task.target_is_criterion and not task.eval_needs_gold
    bad = support_text().replace("metric: pass_all", "metric: tone_ok")
    with pytest.raises(InputError) as e:
        parse(bad)
    assert e.value.line == line_of(bad, "metric: tone_ok") and "rubric criterion: owns_problem" in str(e.value)
    assert SUPPORT.exists() and RUBRIC
