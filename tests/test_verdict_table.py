"""The verdict over constructed results: margins, gaps, undecided sizes, break-even, preferences, guessing."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from advisor.costs import break_even, first_year_at
from advisor.recommend import recommend
from advisor.registry import lever_family
from advisor.report.scorecard import print_results
from advisor.stats import metric_interval
from advisor.verdict_rules import assess, better_than_baseline, trivial_baseline


def _row(name, rung, values, threshold, first_year, *, rule="lower_bound", setup=0.0, per_1k=0.01, upkeep=0.0):
    iv = metric_interval(values, 0.95)
    found = assess(values, threshold, 0.95, rule)
    return {"name": name, "rung": rung, "n_eval": len(values), "confidence": 0.95,
            "metrics": {"accuracy": iv.as_dict()},
            "cost": {"first_year_usd": first_year, "per_1k_queries_usd": per_1k, "setup_usd": setup,
                     "upkeep_usd_per_month": upkeep, "monthly_usd": 0.0},
            "meets_target": found["state"] == "meets", "state": found["state"],
            "lower_bound": found["lower_bound"], "upper_bound": found["upper_bound"],
            "items_needed": found["items_needed"], "no_better_than_baseline": False,
            "family": lever_family({"rung": rung})}


def _flip(values, k):
    """`values` with the first k right answers made wrong (a paired, slightly worse lever)."""
    out, done = list(values), 0
    for i, v in enumerate(out):
        if v == 1.0 and done < k:
            out[i], done = 0.0, done + 1
    return out


LORA = [1.0] * 360 + [0.0] * 40  # 0.90 on 400 items


def _decide(rows, per_item, threshold, margin):
    return recommend(rows, "accuracy", threshold, rule="lower_bound", margin=margin, per_item=per_item)


def test_cheaper_lever_within_the_margin_wins_and_a_significant_gap_loses():
    close = _flip(LORA, 8)  # 0.88: 8 items worse, every other item the same
    far = _flip(LORA, 60)  # 0.75
    for name, few, margin, winner in [("close", close, 0.05, "prompt-few-shot"), ("close, no margin", close, 0.0, "lora"),
                                      ("far", far, 0.05, "lora")]:
        rows = [_row("prompt-few-shot", 1, few, 0.87, 20.0), _row("lora", 3, LORA, 0.87, 500.0)]
        v = _decide(rows, {"prompt-few-shot": few, "lora": LORA}, 0.87, margin)
        assert v.lever == winner, name
        assert v.states["lora"] == "meets"
    # The close lever: not itself shown to meet 0.87, but not worse than lora by more than 0.05.
    assert v.states["prompt-few-shot"] == "fails"
    close_rows = [_row("prompt-few-shot", 1, close, 0.87, 20.0), _row("lora", 3, LORA, 0.87, 500.0)]
    v = _decide(close_rows, {"prompt-few-shot": close, "lora": LORA}, 0.87, 0.05)
    assert v.states["prompt-few-shot"] == "undecided"
    assert any("preferred to lora" in r and "margin 0.05" in r for r in v.reasons)
    (c,) = v.comparisons
    assert c["lever"] == "lora" and c["against"] == "prompt-few-shot" and c["difference"]["value"] == pytest.approx(0.02)
    assert c["mcnemar_p"] == pytest.approx(2 / 2**8)  # 8 discordant items, all one way: p = 2 / 2^8
    assert c["significantly_better"] and "buys nothing" not in c["message"]
    # The far lever: lora is significantly better and the verdict names the gap.
    rows = [_row("prompt-few-shot", 1, far, 0.87, 20.0), _row("lora", 3, LORA, 0.87, 500.0)]
    v = _decide(rows, {"prompt-few-shot": far, "lora": LORA}, 0.87, 0.05)
    (c,) = v.comparisons
    assert c["lever"] == "prompt-few-shot" and not c["non_inferior"] and "worse by more than the margin" in c["message"]
    assert any(r.startswith("prompt-few-shot: accuracy 0.750") and "fails" in r for r in v.reasons)


def test_too_small_eval_says_undecided_with_a_number_of_items():
    lora = [1.0] * 249 + [0.0] * 51  # TREC's lora: 0.830 on 300 items, target 0.80
    prompt = [1.0] * 87 + [0.0] * 213
    rows = [_row("prompt", 0, prompt, 0.80, 2.26), _row("lora", 3, lora, 0.80, 482.46)]
    v = _decide(rows, {"prompt": prompt, "lora": lora}, 0.80, 0.0)
    need = rows[1]["items_needed"]
    assert v.lever is None and v.states == {"prompt": "fails", "lora": "undecided"}
    assert v.reason.startswith("Undecided") and f"about {need:,} more eval items" in v.reason
    assert v.next_step.startswith("collect more eval items for lora")
    # The point rule (today's behaviour) recommends it.
    rows_point = [_row("prompt", 0, prompt, 0.80, 2.26, rule="point"), _row("lora", 3, lora, 0.80, 482.46, rule="point")]
    assert recommend(rows_point, "accuracy", 0.80, rule="point").lever == "lora"


def test_break_even_matches_a_hand_computation():
    hosted = {"name": "prompt", "cost": {"setup_usd": 0.0, "upkeep_usd_per_month": 0.0, "per_1k_queries_usd": 0.02}}
    tuned = {"name": "lora", "cost": {"setup_usd": 480.0, "upkeep_usd_per_month": 10.0, "per_1k_queries_usd": 0.002}}
    (pair,) = break_even([hosted, tuned])
    # 480 + 12 * 10 = 600 a year more, saved at (0.02 - 0.002) / 1000 a query: 600 / (12 * 0.000018).
    assert pair["cheaper"] == "prompt" and pair["dearer"] == "lora"
    assert pair["queries_per_month"] == pytest.approx(600 / (12 * 0.018 / 1000))
    q = pair["queries_per_month"]
    assert first_year_at(tuned["cost"], q) == pytest.approx(first_year_at(hosted["cost"], q))
    assert "2,777,778 queries a month" in pair["message"]
    dear_everywhere = {"name": "rag", "cost": {"setup_usd": 5.0, "upkeep_usd_per_month": 0.0, "per_1k_queries_usd": 0.03}}
    (never,) = break_even([hosted, dear_everywhere])
    assert never["queries_per_month"] is None and "never" in never["message"]


def test_prompt_family_is_preferred_whatever_the_cost_and_guessing_is_never_recommended():
    good = [1.0] * 380 + [0.0] * 20
    rows = [_row("rag", 2, good, 0.8, 5.0), _row("prompt-few-shot", 1, good, 0.8, 50.0)]
    v = recommend(rows, "accuracy", 0.8, rule="lower_bound", per_item={"rag": good, "prompt-few-shot": good})
    assert v.lever == "prompt-few-shot" and any("prompt: it is preferred" in r for r in v.reasons)
    assert {b["cheaper"] for b in v.break_even} == {"rag"}
    rows[1]["no_better_than_baseline"] = True
    v = recommend(rows, "accuracy", 0.8, rule="lower_bound")
    assert v.lever == "rag"  # the preferred prompt-family lever is passed over: no better than guessing
    rows[0]["no_better_than_baseline"] = True
    v = recommend(rows, "accuracy", 0.8, rule="lower_bound")
    assert v.lever is None  # both meet the target, neither beats guessing: nothing is recommended
    guessing = [r.split(":")[0] for r in v.reasons if "is no better than guessing" in r]
    assert sorted(guessing) == ["prompt-few-shot", "rag"]


def test_majority_label_baseline_flags_a_lever_no_better_than_guessing(tmp_path, write_jsonl):
    from advisor.data import load_dataset
    from advisor.scoring import score
    from advisor.spec import load_task

    # Two labels, 87% "ok": the majority label alone scores 0.87 (the case a new user met).
    write_jsonl(tmp_path / "train.jsonl", [{"input": f"t{i}", "output": "ok" if i % 10 else "bad"} for i in range(50)])
    write_jsonl(tmp_path / "eval.jsonl", [{"input": f"e{i}", "output": "ok" if i < 87 else "bad"} for i in range(100)])
    (tmp_path / "task.yaml").write_text(
        "name: t\nkind: classification\nlabels: [bad, ok]\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
        "target: {metric: accuracy, threshold: 0.7}\n")
    task = load_task(tmp_path / "task.yaml")
    data = load_dataset(task)
    base = trivial_baseline(task, data)
    assert base["name"] == "majority-label" and base["answer"] == "ok"
    assert base["metrics"]["accuracy"]["value"] == pytest.approx(0.87)
    golds = [ex.output for ex in data.eval]
    # A lever at 0.76: "meets" 0.7 by itself, but worse than always answering "ok".
    preds = ["ok" if i < 69 or i >= 94 else "bad" for i in range(100)]
    s = score(task, golds, preds)
    assert s.aggregate["accuracy"] == pytest.approx(0.76)
    assert not better_than_baseline(task, s.per_item, preds, base)
    perfect = score(task, golds, golds)
    assert better_than_baseline(task, perfect.per_item, golds, base)
    json.dumps({k: base[k] for k in ("name", "answer", "metrics")})  # the results.json row serialises


def test_scorecard_shows_states_bars_monthly_cost_and_reasons():
    lora = [1.0] * 249 + [0.0] * 51
    prompt = [1.0] * 87 + [0.0] * 213
    good = [1.0] * 290 + [0.0] * 10
    rows = [_row("prompt", 0, prompt, 0.80, 2.26), _row("rag", 2, good, 0.80, 20.0), _row("lora", 3, lora, 0.80, 482.0)]
    for r in rows:
        r["cost"].update({"latency_ms_p50": 400, "latency_ms_p95": 450, "monthly_usd": 1.5})
    v = recommend(rows, "accuracy", 0.80, rule="lower_bound", per_item={"prompt": prompt, "rag": good, "lora": lora})
    results = {"task": "t", "kind": "classification", "levers": rows, "queries_per_month": 100000,
               "target": {"metric": "accuracy", "threshold": 0.8, "confidence": 0.95, "need": ""},
               "recommendation": v.as_dict(),
               "baseline": {"name": "majority-label", "answer": "HUM",
                            "metrics": {"accuracy": {"value": 0.22, "ci_low": 0.18, "ci_high": 0.27}}}}
    console = Console(record=True, width=100)
    print_results(console, results)
    text = console.export_text()
    assert "✓ meets" in text and "✗ fails" in text and "? undecided" in text
    assert "│" in text and "●" in text and "$/mo" in text and "1.50" in text
    assert "Recommendation: rag" in text and "Why:" in text and "Trivial baseline (majority-label" in text
    assert f"~{rows[2]['items_needed']:,}" in text


def test_judge_run_annotates_rows_and_handles_a_set_level_target(tmp_path, write_jsonl):
    """The runner's entry point, over scored levers: macro-F1 (no per-item scores) gets bootstrap bounds."""
    from types import SimpleNamespace

    from advisor.data import load_dataset
    from advisor.scoring import score
    from advisor.spec import load_task
    from advisor.verdict_rules import judge_run

    labels = ["a", "b", "c"]
    write_jsonl(tmp_path / "train.jsonl", [{"input": f"t{i}", "output": labels[i % 3]} for i in range(30)])
    rows = [{"input": f"e{i}", "output": labels[i % 3], "group": f"doc{i // 4}"} for i in range(120)]
    write_jsonl(tmp_path / "eval.jsonl", rows)
    (tmp_path / "task.yaml").write_text(
        "name: t\nkind: classification\nlabels: [a, b, c]\ndata: {train: train.jsonl, eval: eval.jsonl}\n"
        "target: {metric: macro_f1, threshold: 0.5}\nlevers: [prompt, lora]\n")
    task = load_task(tmp_path / "task.yaml")
    data = load_dataset(task)
    golds = [ex.output for ex in data.eval]

    def lever(name, rung, preds, first_year):
        s = score(task, golds, preds)
        r = SimpleNamespace(name=name, rung=rung, scores=s, verdict_fields={}, meets_target=False,
                            predictions=[SimpleNamespace(output=p) for p in preds])
        r.as_dict = lambda conf, r=r, s=s: {
            "name": r.name, "rung": r.rung, "n_eval": len(golds), "confidence": conf, "meets_target": r.meets_target,
            "metrics": {m: {"value": v, "ci_low": v, "ci_high": v} for m, v in s.aggregate.items()},
            "cost": {"first_year_usd": first_year, "per_1k_queries_usd": 0.01, "setup_usd": 0.0,
                     "upkeep_usd_per_month": 0.0}, **r.verdict_fields}
        return r

    perfect = lever("lora", 3, golds, 500.0)
    constant = lever("prompt", 0, ["a"] * len(golds), 2.0)  # the majority label itself: guessing
    verdict, baseline = judge_run(task, data, [constant, perfect])
    assert baseline["name"] == "majority-label" and baseline["answer"] == "a"
    assert constant.verdict_fields["no_better_than_baseline"] and constant.verdict_fields["state"] == "fails"
    assert perfect.verdict_fields["state"] == "meets" and perfect.meets_target
    assert perfect.verdict_fields["family"] == "fine-tuning" and constant.verdict_fields["family"] == "prompt"
    assert verdict.lever == "lora" and verdict.comparisons == []  # macro-F1: no per-item scores to pair
    assert any("no better than guessing" in r for r in verdict.reasons)
