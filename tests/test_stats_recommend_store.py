from __future__ import annotations

import numpy as np
import pytest

from advisor.data import stable_hash
from advisor.stats import bootstrap_interval, bootstrap_statistic
from advisor.store import MIGRATIONS, RunStore
from advisor.types import Prediction


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [1.0] * 70 + [0.0] * 30
    a = bootstrap_interval(values, 0.95, seed=3)
    b = bootstrap_interval(values, 0.95, seed=3)
    assert a == b
    assert a.low < 0.7 < a.high
    # Normal approximation: 0.7 ± 1.96 * sqrt(0.21 / 100) = ±0.0898
    assert a.high - a.low == pytest.approx(2 * 0.0898, abs=0.03)
    narrow = bootstrap_interval(values * 10, 0.95)
    assert narrow.high - narrow.low < a.high - a.low


def test_bootstrap_statistic_matches_mean_rule():
    x = np.array([1.0] * 60 + [0.0] * 40)
    s = bootstrap_statistic(len(x), lambda idx: float(x[idx].mean()), 0.9, n_boot=500)
    assert s.value == pytest.approx(0.6)
    assert s.low < 0.6 < s.high


def _items(value, n=100):
    k = round(value * n)
    return [1.0] * k + [0.0] * (n - k)


def _lever(name, rung, value, first_year, n=100, metric="accuracy", extra=None):
    """Evidence for one row: per-item target scores at `value` over n items, plus other figures (`extra`)."""
    from advisor.record import CostRecord, MetricRecord
    from advisor.stats import metric_interval
    from advisor.verdict import LeverEvidence

    values = _items(value, n)
    metrics = {metric: MetricRecord(**metric_interval(values, 0.95).as_dict())}
    metrics.update({k: MetricRecord(value=v, ci_low=v, ci_high=v) for k, v in (extra or {}).items()})
    family = {0: "prompt", 1: "prompt", 2: "retrieval"}.get(rung, "fine-tuning")
    cost = CostRecord(setup_usd=0.0, per_1k_queries_usd=0.01, latency_ms_p50=None, latency_ms_p95=None,
                      upkeep_usd_per_month=0.0, monthly_usd=1.0, first_year_usd=first_year, tokens_in_mean=1,
                      tokens_out_mean=1, compute_s_per_query=0, setup_seconds=0)
    return LeverEvidence(name, rung, family, n, metrics, cost, {metric: values}, [None] * n,
                         retrieves=name.endswith("rag"))


def recommend(rows, metric, threshold, *, has_knowledge=True, curves=None):
    from advisor.record import CurveRecord, TargetRecord
    from advisor.verdict import decide

    said = {k: CurveRecord(metric=metric, threshold=threshold, points=[], **v) for k, v in (curves or {}).items()}
    return decide(TargetRecord(metric=metric, threshold=threshold, confidence=0.95), rows, None,
                  golds=[None] * rows[0].n_eval, has_knowledge=has_knowledge, curves=said).record


def test_recommend_picks_the_cheapest_lever_that_meets():
    levers = [_lever("prompt", 0, 0.6, 10), _lever("prompt-few-shot", 1, 0.9, 20), _lever("lora", 3, 0.95, 500)]
    v = recommend(levers, "accuracy", 0.8)
    assert v.lever == "prompt-few-shot" and v.outcome == "recommend"
    assert "prompt (0.600, fails)" in v.reason and "did not qualify" in v.reason
    assert v.ranking == ["prompt", "prompt-few-shot", "lora"]


def test_recommend_none_names_closest_and_next_rung():
    v = recommend([_lever("prompt", 0, 0.6, 10), _lever("prompt-few-shot", 1, 0.65, 20)], "accuracy", 0.8)
    assert v.lever is None and v.outcome == "none" and v.closest == "prompt-few-shot"
    assert v.next_step.startswith("rag")


def test_next_step_advice_follows_what_the_task_has():
    lora_only = [_lever("prompt", 0, 0.0, 40), _lever("lora", 3, 0.54, 510)]
    without = recommend(lora_only, "accuracy", 0.9, has_knowledge=False)
    assert without.closest == "lora" and without.next_step.startswith("lora-rag")
    assert "similar labelled train examples" in without.next_step and "--learning-curve" in without.next_step
    with_kb = recommend(lora_only, "accuracy", 0.9, has_knowledge=True)
    assert "knowledge base" in with_kb.next_step
    top = recommend([_lever("lora-rag", 4, 0.5, 600)], "accuracy", 0.9)
    assert top.next_step.startswith("more or cleaner training data")
    # A measured curve replaces the suggestion to measure one.
    said = {"lora": {"message": "the fitted curve levels off at 0.576, below the target 0.9"}}
    curved = recommend(lora_only, "accuracy", 0.9, has_knowledge=False, curves=said)
    assert "--learning-curve" not in curved.next_step
    assert curved.next_step.endswith("(lora's learning curve: the fitted curve levels off at 0.576, below the target 0.9)")


def _qa(name, rung, exact, contains, recall=None, json_valid=None, first_year=10.0):
    extra = {"contains": contains, "retrieval_recall@3": recall, "json_valid": json_valid}
    return _lever(name, rung, exact, first_year, metric="exact_match",
                  extra={k: v for k, v in extra.items() if v is not None})


def test_diagnosis_tells_retrieval_reading_and_format_misses_apart():
    from advisor.verdict import diagnose as _diagnose

    def diagnose(ev):
        return _diagnose(ev.name, ev.metrics)

    # The countries sample's rag: the source is always retrieved, the answer right in 31%, exact in none.
    rag = diagnose(_qa("rag", 2, 0.0, 0.31, recall=1.0))
    assert rag.startswith("rag: ") and "reading miss" in rag and "format miss" in rag and "retrieved for 100%" in rag
    assert "31%" in rag and "only 0% match exactly" in rag
    assert "format miss" in diagnose(_qa("prompt-few-shot", 1, 0.01, 0.2)) and "20%" in diagnose(_qa("p", 0, 0.0, 0.2))
    missed = diagnose(_qa("rag", 2, 0.3, 0.32, recall=0.5))
    assert "retrieval miss" in missed and "50%" in missed and "reading" not in missed and "format" not in missed
    assert diagnose(_qa("lora", 3, 0.14, 0.14)) is None  # wrong facts, right format: nothing to point at
    assert "valid JSON" in diagnose(_qa("prompt", 0, 0.0, 0.0, json_valid=0.585))
    assert diagnose(_lever("prompt", 0, 0.3, 10)) is None  # classification has none of these metrics
    levers = [_qa("rag", 2, 0.0, 0.31, recall=1.0), _qa("lora-rag", 4, 1.0, 1.0, recall=1.0, first_year=500)]
    v = recommend(levers, "exact_match", 0.9)
    assert v.lever == "lora-rag" and len(v.notes) == 1 and v.notes[0].startswith("rag: ")
    assert any(r.startswith("lora-rag: fine-tuned for the format, fed by retrieval") for r in v.reasons)
    from rich.console import Console

    from advisor.report.scorecard import verdict_panel

    console = Console(record=True, width=200)
    console.print(verdict_panel({"verdict": v.model_dump(mode="json"), "target": {"need": "9 in 10"}}))
    shown = console.export_text()
    assert "Where the others lose points" in shown and "rag: the gold source is retrieved for 100%" in shown


def test_store_round_trip_and_migrations(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    p = Prediction("e1", {"a": 1}, "raw", 10, 2, 0.5, {"shots": ["t1"], "option_scores": [-1.0, -2.0]},
                   tokens_in_cached=7)
    store.put_predictions("prompt", "hf:x", [("k1", p)])
    got = store.get_predictions(["k1", "k2"])
    assert list(got) == ["k1"]
    assert got["k1"].output == {"a": 1} and got["k1"].cached
    assert got["k1"].context == {"shots": ["t1"], "option_scores": [-1.0, -2.0]}
    assert (got["k1"].tokens_in, got["k1"].tokens_in_cached) == (10, 7)  # what a later price charges
    store.close()
    again = RunStore(tmp_path / "s.sqlite")  # reopening runs no migration twice
    assert again.count_predictions("prompt") == 1


def test_a_store_from_before_cached_tokens_were_recorded_reads_them_as_zero(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "old.sqlite")  # as a run before this column existed left it
    before = next(i for i, sql in enumerate(MIGRATIONS) if "tokens_in_cached" in sql)  # that column's migration
    for i, sql in enumerate(MIGRATIONS[:before]):
        old.executescript(sql)
        old.execute(f"PRAGMA user_version = {i + 1}")
    old.execute("INSERT INTO predictions VALUES ('k1','prompt','e1','hf:x','NUM','\"NUM\"',300,2,0.1,NULL,'{}',0)")
    old.commit()
    old.close()
    store = RunStore(tmp_path / "old.sqlite")
    got = store.get_predictions(["k1"])["k1"]
    assert (got.output, got.tokens_in, got.tokens_in_cached) == ("NUM", 300, 0)  # charged in full, as it was
    assert stable_hash({"b": 1, "a": 2}) == stable_hash({"a": 2, "b": 1})
