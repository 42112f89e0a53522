"""bench/verdict_calibration.py at a low number of simulations: its code path runs on the real
verdict, gate and interval code and every rate it prints is a proportion (the calibration
itself is checked by running the bench at full size; see its docstring)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench" / "verdict_calibration.py"


def _bench():
    spec = importlib.util.spec_from_file_location("verdict_calibration", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_bench_scenarios_run_and_give_rates_in_0_1():
    bench = _bench()
    rows = bench.run(sims=100, seed=3)
    names = [r.scenario for r in rows]
    # Every scenario the issue asks for is there: both designs, the three truths, 1 and 5 levers, coverage.
    for design in ("ungrouped 300", "grouped 60x5"):
        for truth in ("0.78", "0.80", "0.82"):
            assert any(design in n and f"truth {truth}" in n and "'meets' claimed" in n for n in names)
            assert any(n.startswith("coverage") and design in n and truth in n for n in names)
        for levers in ("1 unchanged lever:", "5 unchanged levers:"):
            assert any(design in n and levers in n and n.endswith("gate fails") for n in names)
    assert any(n.startswith("power of 'meets' at total_items_needed") for n in names)
    for r in rows:
        assert 0.0 <= r.rate <= 1.0 and r.sims >= 100
        assert r.kind in {"max", "min", "info"} and (r.bound is None) == (r.kind == "info")
    table = bench.format_table(rows)
    assert all(n in table for n in names) and ("PASS" in table or "FAIL" in table)


def test_the_bench_simulations_have_the_stated_correlation():
    """The grouped design's beta-binomial has intra-group correlation 0.3 and the stated mean."""
    bench = _bench()
    rng = np.random.default_rng(0)
    sets = np.array([bench.draw_eval_set(rng, 0.8, grouped=True) for _ in range(400)]).reshape(400, 60, 5)
    assert abs(sets.mean() - 0.8) < 0.01
    a, b = sets[:, :, 0].ravel(), sets[:, :, 1].ravel()
    assert abs(np.corrcoef(a, b)[0, 1] - 0.3) < 0.05
    x, y = bench.draw_unchanged_pair(rng, grouped=True)
    assert x.shape == y.shape == (300,) and set(np.unique(x)) <= {0.0, 1.0}


def test_the_bench_exits_1_when_a_bound_fails(monkeypatch, capsys):
    bench = _bench()
    bad = bench.Row("a procedure at twice its level", 100, 1000, "max", 0.05)
    good = bench.Row("coverage", 950, 1000, "min", 0.95)
    monkeypatch.setattr(bench, "run", lambda sims, seed: [bad, good])
    assert bench.main(["--sims", "10"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "PASS" in out
    monkeypatch.setattr(bench, "run", lambda sims, seed: [good])
    assert bench.main(["--sims", "10"]) == 0
