"""`advise compare` as a CI gate: stored runs in real run stores, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.store import RunStore

IDS = [f"eval-{i}" for i in range(200)]


def _stored_run(folder: Path, per_lever: dict[str, list[float]], recommended: str | None,
                **extra: object) -> Path:
    """A run folder as `advise run` leaves it: results.json plus per-item scores in advise.sqlite."""
    store = RunStore(folder / "advise.sqlite")
    run_id = store.start_run("t")
    for lever, values in per_lever.items():
        store.put_item_scores(run_id, lever, IDS, {"accuracy": values})
    results = {"task": "t", "kind": "classification",
               "target": {"metric": "accuracy", "threshold": 0.8, "confidence": 0.95, "need": ""},
               "levers": [{"name": n, "metrics": {"accuracy": {"value": sum(v) / len(v)}}} for n, v in per_lever.items()],
               "recommendation": {"lever": recommended}, **extra}
    store.finish_run(run_id, "done", results)
    store.close()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


GOOD = [1.0] * 180 + [0.0] * 20
PROMPT = [1.0] * 100 + [0.0] * 100


def test_unchanged_rerun_passes_and_a_planted_regression_fails(tmp_path):
    a = _stored_run(tmp_path / "a", {"prompt": PROMPT, "lora": GOOD}, "lora")
    same = _stored_run(tmp_path / "same", {"prompt": PROMPT, "lora": GOOD}, "lora")
    worse = list(GOOD)
    for i in range(0, 60, 3):  # 20 items the recommended lever got right are now wrong
        worse[i] = 0.0
    bad = _stored_run(tmp_path / "bad", {"prompt": PROMPT, "lora": worse}, "lora")
    runner = CliRunner()
    ok = runner.invoke(main, ["compare", str(a), str(same)])
    assert ok.exit_code == 0, ok.output
    assert "OK: no gated lever regressed" in ok.output and "lora *" in ok.output
    failed = runner.invoke(main, ["compare", str(a), str(bad), "--json"])
    assert failed.exit_code == 1, failed.output
    out = json.loads(failed.output)
    lora = next(c for c in out["levers"] if c["lever"] == "lora")
    assert out["regressed"] and out["gated"] == ["lora"]
    assert lora["regressed"] and lora["difference"]["value"] == pytest.approx(-0.1)
    assert lora["mcnemar_p"] == pytest.approx(2 / 2**20) and lora["n"] == 200


def test_the_gate_watches_only_the_recommended_lever_or_every_lever_when_none(tmp_path):
    worse_prompt = [0.0] * 40 + PROMPT[40:]
    a = _stored_run(tmp_path / "a", {"prompt": PROMPT, "lora": GOOD}, "lora")
    b = _stored_run(tmp_path / "b", {"prompt": worse_prompt, "lora": GOOD}, "lora")
    assert CliRunner().invoke(main, ["compare", str(a), str(b)]).exit_code == 0  # prompt is not the one shipped
    none = _stored_run(tmp_path / "none", {"prompt": PROMPT, "lora": GOOD}, None)
    res = CliRunner().invoke(main, ["compare", str(none), str(b), "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["gated"] == ["prompt", "lora"]


def test_items_are_matched_by_example_id_not_by_position(tmp_path):
    a = _stored_run(tmp_path / "a", {"lora": GOOD}, "lora")
    b = tmp_path / "b"
    store = RunStore(b / "advise.sqlite")
    run_id = store.start_run("t")
    store.put_item_scores(run_id, "lora", list(reversed(IDS)), {"accuracy": list(reversed(GOOD))})
    store.finish_run(run_id, "done", {})
    store.close()
    (b / "results.json").write_text((a / "results.json").read_text())
    out = json.loads(CliRunner().invoke(main, ["compare", str(a), str(b), "--json"]).output)
    assert out["levers"][0]["difference"]["value"] == 0.0 and not out["regressed"]


def _prov(eval_hash: str, n_eval: int, ranking: str = "calibrated") -> dict[str, object]:
    return {"provenance": {"model": "hf:m", "prompt_sha256": "p1", "data": {"eval": eval_hash, "n_eval": n_eval}},
            "scoring": {"option_ranking": ranking}}


def test_runs_of_different_eval_sets_are_refused_and_other_differences_are_named(tmp_path):
    """Field finding: two tasks whose eval files differ (07's short and long spellings, 16 items
    each, the same ids) were paired by id and passed the gate. Same count, other items: exit 2."""
    a = _stored_run(tmp_path / "a", {"lora": GOOD}, "lora", **_prov("aaaa", 200))
    other = _stored_run(tmp_path / "other", {"lora": GOOD}, "lora", **_prov("bbbb", 200))
    res = CliRunner().invoke(main, ["compare", str(a), str(other)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].startswith("error: ") and "different eval sets of 200 items" in res.output
    # A different ranking method on the same eval set is a legitimate change: compared, and named.
    ranked = _stored_run(tmp_path / "ranked", {"lora": GOOD}, "lora", **_prov("aaaa", 200, "calibrated_prefix"))
    res = CliRunner().invoke(main, ["compare", str(a), str(ranked)])
    assert res.exit_code == 0, res.output
    assert "differs: option ranking: calibrated -> calibrated_prefix" in res.output
    # A quick look (--limit) scored fewer items: paired on the ids in both, and said so.
    limited = _stored_run(tmp_path / "limited", {"lora": GOOD}, "lora", **_prov("cccc", 50))
    out = json.loads(CliRunner().invoke(main, ["compare", str(a), str(limited), "--json"]).output)
    assert out["differences"] == ["eval set: 200 and 50 items (e.g. --limit); paired on the ids in both"]


def test_a_missing_run_is_one_line_and_exit_2(tmp_path):
    res = subprocess.run([sys.executable, "-m", "advisor.cli", "compare", str(tmp_path / "nope"), str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("error:") and "results.json" in res.stderr


def test_a_rows_own_label_ranking_method_is_named_when_it_differs(tmp_path):
    """Under scoring.option_ranking: auto both runs say "auto"; the row's chosen method is what moved."""
    def run(folder: Path, method: str) -> Path:
        path = _stored_run(folder, {"lora": GOOD}, "lora", **_prov("aaaa", 200, "auto"))
        results = json.loads((path / "results.json").read_text())
        results["levers"][0]["option_ranking"] = {"method": method, "natural": "sum", "why": "natural"}
        (path / "results.json").write_text(json.dumps(results))
        return path

    out = json.loads(CliRunner().invoke(main, ["compare", str(run(tmp_path / "a", "sum")),
                                               str(run(tmp_path / "b", "calibrated")), "--json"]).output)
    assert out["differences"] == ["lora: label ranking sum -> calibrated"]
