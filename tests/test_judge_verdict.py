"""A rubric criterion as target.metric: the verdict decides on PPI++ bounds with human grades, on the
judge's own Wilson bounds without (saying so), and refuses to decide when the judge disagrees with people."""

from __future__ import annotations

import json

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
    assert "judge only, not checked against people" in v.record.reason  # the recommendation says so too
    assert "5 of 100 judge grades unscored" in lv.basis  # counted, never a pass or a fail
    lo, hi = metric_interval([1.0] * 95, 0.90).as_dict()["ci_low"], 1.0
    assert lv.lower_bound == pytest.approx(lo)
    assert hi >= lv.upper_bound


def test_judge_only_undecided_says_how_many_more_items():
    grades = [1.0] * 16 + [0.0] * 4
    v = decide(TARGET, [evidence("prompt", grades, {})], None, golds=[None] * 20)
    lv = v.levers["prompt"]
    assert lv.state == "undecided" and "more scored eval items would settle it" in lv.basis
    assert "judge only" in v.record.reason


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


def test_samples_need_a_temperature_and_name_its_line():
    text = support_text(RUBRIC.replace("  mode: per_criterion\n", "  mode: per_criterion\n  samples: 3\n"))
    with pytest.raises(InputError) as e:
        parse(text)
    assert "temperature above 0" in str(e.value) and e.value.field == "rubric.samples"
    assert e.value.line == line_of(text, "samples: 3")
    ok = parse(support_text(RUBRIC.replace("  mode: per_criterion\n",
                                           "  mode: per_criterion\n  samples: 3\n  temperature: 0.7\n")))
    assert ok.rubric.samples == 3 and ok.rubric.temperature == 0.7
    assert parse(support_text()).rubric.temperature == 0.0


def test_samples_majority_flips_ties_and_cache_per_sample(tmp_path):
    from advisor.judge.grading import Grader
    from advisor.store import RunStore
    from tests.test_judge import ScriptedJudge

    task = parse(support_text(RUBRIC.replace("  mode: per_criterion\n",
                                             "  mode: per_criterion\n  samples: 4\n  temperature: 0.7\n")))
    script = {  # output -> the grades of its 4 samples, in the order sent
        "steady": ["pass"] * 4, "flipper": ["pass", "pass", "pass", "fail"], "tie": ["pass", "fail", "pass", "fail"],
        "garbled": ["pass", "not json", "pass", "pass"]}
    calls: dict[tuple[str, str], int] = {}

    def answer(r):
        text = r.messages[-1]["content"]
        out = next(o for o in script if f"Output:\n{o}\n" in text)
        crit = next(iter(r.json_schema["properties"]))
        i = calls.get((out, crit), 0)
        calls[(out, crit)] = i + 1
        g = script[out][i]
        return g if g == "not json" else json.dumps({crit: g})

    judge = ScriptedJudge(answer)
    store = RunStore(tmp_path / "s.sqlite")
    items = [(f"e{i}", "complaint", out) for i, out in enumerate(script)]
    found = Grader(task.rubric, judge, store).grade(items)
    assert len(judge.sent) == 4 * 4 * 2  # 4 outputs x 4 samples x 2 criteria
    assert found.grades["owns_problem"] == [1.0, 1.0, None, 1.0]  # majority; the 2-2 tie unscored
    s = found.summary()["owns_problem"]
    assert s["samples"] == 4 and s["flips"] == 2 and s["flip_ids"] == ["e1", "e2"] and s["flip_rate"] == 0.5
    assert s["ties"] == 1 and s["tie_ids"] == ["e2"] and s["unscored"] == 1
    assert found.samples["owns_problem"][3] == [1.0, None, 1.0, 1.0]  # an unreadable sample stays unscored
    again = Grader(task.rubric, judge, store).grade(items)
    assert len(judge.sent) == 32 and again.requests == 0 and again.samples == found.samples  # cached per sample
    store.close()


def test_verdict_bounds_include_judge_noise_with_samples():
    grades = [1.0] * 45 + [0.0] * 5
    steady = evidence("prompt", grades, {}).criterion
    noisy_samples = [[1.0, 1.0, 0.0]] * 45 + [[0.0, 0.0, 1.0]] * 5  # same majority, every item flips
    noisy = evidence("prompt", grades, {}, samples=noisy_samples).criterion
    _, lo_s, hi_s, _ = assess_criterion(steady, 0.8, "lower_bound")
    _, lo_n, hi_n, basis = assess_criterion(noisy, 0.8, "lower_bound")
    assert lo_n < lo_s and "judge noise included" in basis


def test_length_probe_flags_a_lead_that_is_only_length():
    from advisor.judge.bias import length_probe

    rng = np.random.default_rng(3)
    # The judge passes an output by its length alone; the long row writes longer outputs.
    short_w = rng.integers(10, 60, 90)
    long_w = rng.integers(30, 90, 90)

    def grade(w):
        return [float(x > 45) for x in w]

    probe = length_probe({"prompt": (list(short_w), grade(short_w)), "rag": (list(long_w), grade(long_w))},
                         "owns_problem")
    rag, prompt = probe["levers"]["rag"], probe["levers"]["prompt"]
    assert rag["rate"] > prompt["rate"] and rag["r"] > 0.5 and rag["p"] < 0.01
    assert len(probe["flags"]) == 1 and probe["flags"][0].startswith("owns_problem: rag passes")
    # A real lead: the long row passes more at every length.
    fair = length_probe({"prompt": (list(short_w), [0.0] * 90), "rag": (list(long_w), [1.0] * 90)}, "owns_problem")
    assert fair["flags"] == [] and fair["levers"]["rag"]["r"] is None  # a constant grade: no correlation
    assert length_probe({"prompt": ([5, 6], [1.0, None])}, "c")["cuts"] is None  # too few to bin


def test_terminal_shows_the_length_probe():
    from rich.console import Console

    from advisor.judge.bias import length_probe
    from advisor.record import RunRecord
    from advisor.report.scorecard import print_length_probe

    probe = length_probe({"prompt": ([10, 20, 30, 40, 50, 60], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0])}, "owns_problem")
    record = RunRecord.model_construct(judge_bias={"owns_problem": probe})
    console = Console(record=True, width=200)
    print_length_probe(console, record)
    text = console.export_text()
    r = np.corrcoef([10, 20, 30, 40, 50, 60], [0, 0, 1, 1, 1, 1])[0, 1]  # point-biserial = Pearson on 0/1
    assert "owns_problem by length" in text and f"prompt 0.00/1.00/1.00, r {r:+.2f} (p=0.042)" in text


def test_report_judge_section_shows_kappa_flips_and_length():
    from advisor.judge.bias import length_probe
    from advisor.report.judge_view import judge_section

    probe = length_probe({"prompt": ([10, 20, 30, 40, 50, 60], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0])}, "owns_problem")
    r = {"judge": {"prompt": {"owns_problem": {
            "judge_rate": 0.67, "scored": 6, "unscored": 0, "human": 6, "ppi": None,
            "agreement": {"kappa": -0.2, "kappa_low": -0.6, "kappa_high": 0.3, "state": "refused"}}}},
         "judge_bias": {"owns_problem": probe},
         "levers": [{"name": "prompt", "details": {"judge": {"criteria": {"owns_problem": {
             "samples": 3, "flips": 1, "flip_rate": 1 / 6, "flip_ids": ["e2"], "ties": 0}}}}}]}
    section = judge_section(r)
    tables = [b for b in section.blocks if b.kind == "table"]
    assert tables[0].rows[0][5] == "-0.20 [-0.60, 0.30] refused"
    assert tables[1].rows[0][3:5] == ["1 (0.17)", "e2"]
    assert tables[2].rows[0][3:6] == ["0.00", "1.00", "1.00"]
    assert judge_section({"levers": []}) is None  # no rubric: no section
    from advisor.report.blocks import Document
    from advisor.report.html import render_html
    from advisor.report.markdown import render_markdown

    doc = Document("t", "s", [section])
    assert "refused" in render_html(doc) and "e2" in render_markdown(doc, {})


@pytest.mark.parametrize("extra, field", [("  samples: 0\n", "rubric.samples"),
                                          ("  in_pass_all: maybe\n", "rubric.in_pass_all"),
                                          ("  temperature: -1\n", "rubric.temperature"),
                                          ("  samples: 2\n", "rubric.samples")])
def test_bad_repeatability_settings_name_line_and_field(extra, field, tmp_path):
    from click.testing import CliRunner

    from advisor.cli import main

    text = support_text(RUBRIC.replace("  mode: per_criterion\n", "  mode: per_criterion\n" + extra))
    with pytest.raises(InputError) as e:
        parse(text)
    assert e.value.field == field and e.value.line == line_of(text, extra.strip())
    (tmp_path / "data").symlink_to(SUPPORT.parent / "data")  # the data it names, relative to task.yaml
    path = tmp_path / "task.yaml"
    path.write_text(text)
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 2 and f":{e.value.line}: {field}" in out.output
