"""Local compute is priced from tokens at a calibrated rate, so machine load cannot reorder the levers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.costs import upkeep_engineer_usd
from advisor.spec import Costs
from advisor.types import Artifact

HOG = "while True: pass"


def _run(task_file: Path, out: Path) -> dict:
    from advisor.runner import Runner
    from advisor.spec import load_task

    runner = Runner(load_task(task_file), out, latency_probe=0, limit=6)
    try:
        result = runner.run()
        result.write(out / "results.json")  # as `advise run` leaves the folder, for `advise compare`
        return result.to_json()
    finally:
        runner.store.close()


@pytest.mark.slow
def test_a_busy_loop_hogging_the_cores_leaves_prices_and_ranking_unchanged(trec_small, tmp_path, cache_dir, capsys):
    quiet = _run(trec_small, tmp_path / "quiet")
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]  # one per core of the CI machine
    try:
        busy = _run(trec_small, tmp_path / "busy")  # a fresh store: every prediction is computed again
    finally:
        for p in hogs:  # only the processes this test started, by their own handles
            p.terminate()
            p.wait(timeout=10)
    assert all(lv["computed_predictions"] == lv["n_eval"] for lv in busy["levers"])
    price = {r: {lv["name"]: lv["cost"]["per_1k_queries_usd"] for lv in res["levers"]}
             for r, res in (("quiet", quiet), ("busy", busy))}
    assert price["busy"] == pytest.approx(price["quiet"], rel=1e-9)
    assert sorted(price["busy"], key=price["busy"].get) == sorted(price["quiet"], key=price["quiet"].get)
    with capsys.disabled():  # the measured times, shown beside (never asserted: wall clock varies)
        for lv_q, lv_b in zip(quiet["levers"], busy["levers"]):
            print(f"\n{lv_q['name']}: measured s/query quiet {lv_q['cost']['compute_s_per_query']:.4f}, "
                  f"busy {lv_b['cost']['compute_s_per_query']:.4f}; priced "
                  f"{lv_q['cost']['priced_compute_s_per_query']:.4f} s/query both")
    cal = json.loads((cache_dir / "compute_calibration.json").read_text())
    (entry,) = [v for v in cal.values() if v["key"] == quiet["levers"][0]["cost"]["calibration"]["key"]]
    assert entry["calibrated"] and entry["seconds_per_prompt_token"] > 0
    # The same predictions in both runs: `advise compare` finds no regression (exit 0).
    res = CliRunner().invoke(__import__("advisor.cli", fromlist=["main"]).main,
                             ["compare", str(tmp_path / "quiet"), str(tmp_path / "busy")])
    assert res.exit_code == 0, res.output
    assert all(lv["state"] in {"meets", "fails", "undecided"} and lv["family"] == "prompt" for lv in busy["levers"])
    assert busy["baseline"]["name"] == "majority-label" and busy["recommendation"]["rule"] == "lower_bound"


class _Backend:
    identity = "x"

    def price_per_second_usd(self) -> float:
        return 0.0


def test_upkeep_includes_engineer_hours_of_retraining_and_reindexing():
    costs = Costs(engineer_hour_usd=120, retrain_per_month=1, retrain_hours=2, reindex_per_month=4,
                  reindex_hours=0.5)
    adapter = Artifact("lora", "v", _Backend(), info={"adapter": "v"})
    index = Artifact("rag", "i", _Backend(), info={"index": {}})
    both = Artifact("lora-rag", "b", _Backend(), info={"adapter": "v", "index": {}})
    assert upkeep_engineer_usd(adapter, costs) == pytest.approx(240.0)
    assert upkeep_engineer_usd(index, costs) == pytest.approx(240.0)
    assert upkeep_engineer_usd(both, costs) == pytest.approx(480.0)
    assert upkeep_engineer_usd(Artifact("prompt", "p", _Backend()), costs) == 0.0
