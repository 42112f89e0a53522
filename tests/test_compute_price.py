"""Local compute is priced from tokens at a calibrated rate, so machine load cannot reorder the levers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.costs import PRICE_BASIS_LOCAL, TokenPrice, lever_cost, upkeep_engineer_usd
from advisor.report.fmt import price_basis_note
from advisor.spec import Costs
from advisor.types import Artifact, GenerationParams, Prediction, Request

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
    for lv in quiet["levers"]:  # priced: the prompt tokens computed (a shared prefix once) and those generated
        c = lv["cost"]
        assert 0 < c["tokens_in_cached_mean"] < c["tokens_in_mean"] and c["price_basis"] == PRICE_BASIS_LOCAL
        assert c["priced_compute_s_per_query"] == pytest.approx(
            (c["tokens_in_mean"] - c["tokens_in_cached_mean"]) * entry["seconds_per_prompt_token"]
            + c["tokens_out_mean"] * entry["seconds_per_output_token"])
    # The same predictions in both runs: `advise compare` finds no regression (exit 0).
    res = CliRunner().invoke(__import__("advisor.cli", fromlist=["main"]).main,
                             ["compare", str(tmp_path / "quiet"), str(tmp_path / "busy")])
    assert res.exit_code == 0, res.output
    assert all(lv["verdict"]["state"] in {"meets", "fails", "undecided"} and lv["family"] == "prompt"
               for lv in busy["levers"])
    assert busy["baseline"]["name"] == "majority-label" and busy["target"]["rule"] == "lower_bound"


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


SYSTEM = ("You sort questions by the kind of answer they expect. Reply with exactly one label: ABBR, DESC, "
          "ENTY, HUM, LOC or NUM. Answer with the label only.")
QUESTIONS = ["What does NASA stand for?", "Who wrote Hamlet?", "Where is the Eiffel Tower?",
             "How tall is Everest?", "Why is the sky blue?"]


def _requests(options: list[str] | None) -> list[Request]:
    return [Request(f"q{i}", [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
                    options=options, max_new_tokens=2) for i, q in enumerate(QUESTIONS)]


def test_option_ranking_reports_the_prompt_tokens_it_read_from_the_shared_prefix(hf_backend):
    requests = _requests(["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"])
    prompts = [hf_backend.prompt_ids(r.messages) for r in requests]
    shared = 0  # the system turn and the chat template's start: the same tokens in every prompt
    while all(p[shared] == prompts[0][shared] for p in prompts):
        shared += 1
    assert shared > 16  # long enough for the backend to compute it once
    for params in (GenerationParams(batch_size=2), GenerationParams(batch_size=8, option_ranking="sum")):
        answers = hf_backend.score_options(requests, params)
        assert [g.tokens_in for g in answers] == [len(p) for p in prompts]
        # The first prompt computes the prefix; every other one reads it from the key/value cache.
        assert [g.tokens_in_cached for g in answers] == [0] + [shared] * (len(requests) - 1)
    # Generation reuses no prefix: every prompt token is computed, none is counted as cached.
    assert [g.tokens_in_cached for g in hf_backend.generate(_requests(None), GenerationParams())] == [0] * 5


class _Local:
    identity = "hf:x"

    def price_per_second_usd(self) -> float:
        return 0.10 / 3600


def test_the_local_price_charges_the_prompt_tokens_computed_not_those_read_from_a_cache():
    price = TokenPrice(seconds_per_prompt_token=0.002, seconds_per_output_token=0.05, usd_per_second=0.10 / 3600,
                       calibrated="2026-11-30", key="k")
    # Five queries of 300 prompt tokens sharing a 280-token prefix, computed once, then read four times.
    preds = [Prediction(f"q{i}", "NUM", "NUM", 300, 2, 0.1, tokens_in_cached=0 if i == 0 else 280)
             for i in range(5)]
    cost = lever_cost(Artifact("prompt", "p", _Local()), _Local(), preds, [100.0], Costs(), price=price)
    computed = (300 * 5 - 280 * 4) / 5
    assert cost.tokens_in_mean == 300 and cost.tokens_in_cached_mean == 280 * 4 / 5
    assert cost.priced_compute_s_per_query == pytest.approx(computed * 0.002 + 2 * 0.05)
    full = lever_cost(Artifact("prompt", "p", _Local()), _Local(),
                      [Prediction(p.example_id, "NUM", "NUM", 300, 2, 0.1) for p in preds], [100.0], Costs(), price=price)
    assert full.priced_compute_s_per_query == pytest.approx(300 * 0.002 + 2 * 0.05)  # the old price, every token
    assert cost.per_1k_queries_usd == pytest.approx(full.per_1k_queries_usd * (computed * 0.002 + 0.1) / 0.7)
    assert cost.price_basis == PRICE_BASIS_LOCAL and "prefix caching" in cost.price_basis


def test_reports_say_what_each_per_query_price_assumes():
    local = {"name": "prompt", "cost": {"price_basis": PRICE_BASIS_LOCAL}}
    api = {"name": "prompt@api", "cost": {"price_basis": "tokens from each response's usage x the price"}}
    assert price_basis_note([local, {**local, "name": "rag"}]) == f"Per-query price: {PRICE_BASIS_LOCAL}."
    note = price_basis_note([local, api])
    assert note.startswith(f"Per-query price of prompt: {PRICE_BASIS_LOCAL}.") and "of prompt@api: tokens" in note
    assert price_basis_note([{"name": "old", "cost": {}}]) == ""  # a results.json from before: nothing claimed
