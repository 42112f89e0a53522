"""`advise compare` as a CI gate: stored runs in real run stores, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.store import RunStore
from tests.record_factory import lever_entry, record

IDS = [f"eval-{i}" for i in range(200)]


def _stored_run(folder: Path, per_lever: dict[str, list[float]], recommended: str | None,
                **extra: object) -> Path:
    """A run folder as `advise run` leaves it: results.json plus per-item scores in advise.sqlite."""
    store = RunStore(folder / "advise.sqlite")
    run_id = store.start_run("t")
    for lever, values in per_lever.items():
        store.put_item_scores(run_id, lever, IDS, {"accuracy": values})
    results = record([lever_entry(n, sum(v) / len(v)) for n, v in per_lever.items()], recommended, **extra)
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
    return {"provenance": {"model": "hf:m", "prompt_sha256": "p1", "task_sha256": "t1", "created": "2026-01-01T00:00:00Z",
                           "data": {"eval": eval_hash, "n_eval": n_eval, "n_train": 10}},
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


def test_an_api_rows_classification_path_and_off_label_share_are_named_when_they_differ(tmp_path):
    """The same served model asked for labels another way: the path is what moved the figure."""
    def run(folder: Path, path: str, share: float) -> Path:
        stored = _stored_run(folder, {"prompt": GOOD}, "prompt", **_prov("aaaa", 200, "auto"))
        results = json.loads((stored / "results.json").read_text())
        results["levers"][0].update(classification_path=path, off_label={"items": int(share * 200), "share": share})
        (stored / "results.json").write_text(json.dumps(results))
        return stored

    out = json.loads(CliRunner().invoke(main, ["compare", str(run(tmp_path / "a", "generate_and_map", 1.0)),
                                               str(run(tmp_path / "b", "json_schema_enum", 0.0)), "--json"]).output)
    assert out["differences"] == ["prompt: classification path generate_and_map -> json_schema_enum",
                                  "prompt: off-label share 1.0 -> 0.0"]



def test_the_precision_a_run_scored_in_and_a_lora_rows_training_precision_are_named_when_they_differ(tmp_path):
    """The same task on a CPU that picked bf16 and on one that kept fp32 (advisor.compute)."""
    def run(folder: Path, scoring: str, training: str) -> Path:
        stored = _stored_run(folder, {"lora": GOOD}, "lora", **_prov("aaaa", 200, "auto"))
        results = json.loads((stored / "results.json").read_text())
        results["compute"] = {"cpu": "x", "cpu_flags": [], "models": {
            f"hf:m@1/{scoring}": {"device": "cpu", "scoring": {"precision": scoring, "reason": "r"}}}}
        results["levers"][0]["artifact"]["info"] = {"training_precision": training}
        (stored / "results.json").write_text(json.dumps(results))
        return stored

    out = json.loads(CliRunner().invoke(main, ["compare", str(run(tmp_path / "a", "fp32", "fp32")),
                                               str(run(tmp_path / "b", "bf16", "bf16")), "--json"]).output)
    assert out["differences"] == ["precision: fp32 -> bf16", "lora: training precision fp32 -> bf16"]

# -- issue 28: eval groups, the target metric, Holm -------------------------------------------

from advisor.types import Example, Prediction  # noqa: E402


def _grouped_run(folder: Path, eval_file: Path, per_lever: dict[str, list[Any]], recommended: str | None,
                 *, metric: str = "accuracy", golds: list[str] | None = None) -> Path:
    """A run folder whose store also holds run_items (eval example beside its answer), the way
    `advise run` writes them, with each item's source line in `eval_file`."""
    records = [json.loads(line) for line in eval_file.read_text().splitlines()]
    examples = [Example(id=r["id"], input=r["input"], output=r["output"], fields=r, source=f"{eval_file}:{i + 1}",
                        hash="h") for i, r in enumerate(records)]
    ids = [ex.id for ex in examples]
    store = RunStore(folder / "advise.sqlite")
    run_id = store.start_run("t")
    for lever, answers in per_lever.items():
        if golds is None:  # answers are per-item accuracy scores
            scores, outputs = answers, [ex.output if v == 1.0 else "wrong" for ex, v in zip(examples, answers)]
        else:
            outputs = answers
            scores = [1.0 if o == g else 0.0 for o, g in zip(answers, golds)]
        store.put_item_scores(run_id, lever, ids, {"accuracy": scores})
        store.put_run_items(run_id, lever, examples,
                            [Prediction(i, o, str(o), 0, 0, 0.0) for i, o in zip(ids, outputs)])
    results = record([lever_entry(n, 0.5, metric=metric) for n in per_lever], recommended, metric=metric)
    store.finish_run(run_id, "done", results)
    store.close()
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _eval_file(path: Path, n_groups: int, size: int, grouped: bool = True,
               golds: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_groups * size):
        rec: dict[str, Any] = {"id": f"q{i}", "input": f"question {i}", "output": golds[i] if golds else "yes"}
        if grouped:
            rec["group"] = f"passage-{i // size}"
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_pairs_items_with_their_eval_groups(tmp_path):
    """Two passages of forty, all five questions on each flipped: exact McNemar on the items says
    p = 2/2^10 and failed the gate; with the groups it is 2 changed groups of 40, not evidence."""
    a_scores = [1.0] * 200
    b_scores = [0.0] * 10 + [1.0] * 190
    grouped = _eval_file(tmp_path / "data" / "eval.jsonl", 40, 5)
    a = _grouped_run(tmp_path / "a", grouped, {"lora": a_scores}, "lora")
    b = _grouped_run(tmp_path / "b", grouped, {"lora": b_scores}, "lora")
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    lora = out["levers"][0]
    assert out["groups"]["n_groups"] == 40 and "40 eval groups" in out["groups"]["note"]
    assert lora["mcnemar_p"] is None and lora["test"].startswith("cluster-robust")
    assert 0.05 < lora["p_worse"] < 0.15 and not lora["regressed"]
    assert lora["difference"]["ci_low"] < 0 < lora["difference"]["ci_high"]
    # The same items without groups in the eval file: McNemar, and the gate fails.
    flat = _eval_file(tmp_path / "flat" / "eval.jsonl", 40, 5, grouped=False)
    a2 = _grouped_run(tmp_path / "a2", flat, {"lora": a_scores}, "lora")
    b2 = _grouped_run(tmp_path / "b2", flat, {"lora": b_scores}, "lora")
    res = CliRunner().invoke(main, ["compare", str(a2), str(b2), "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 1 and out["groups"]["n_groups"] is None
    assert out["levers"][0]["mcnemar_p"] == pytest.approx(2 / 2**10)
    # An eval file changed since the run is not guessed at: paired as independent, and said so.
    grouped.write_text(grouped.read_text().replace("question 3\"", "question three\""))
    out = json.loads(CliRunner().invoke(main, ["compare", str(a), str(b), "--json"]).output)
    assert out["groups"]["n_groups"] is None and "no longer holds item q3" in out["groups"]["note"]
    text = CliRunner().invoke(main, ["compare", str(a), str(b)]).output
    assert "groups: eval groups unknown" in text


def test_a_macro_f1_target_is_gated_on_macro_f1_not_accuracy(tmp_path):
    """Same accuracy (180/200 in both), but B now misses every item of a rare label: macro-F1
    falls from 0.867 to 0.647. The gate watched accuracy and passed; it must fail."""
    golds = ["a"] * 160 + ["b"] * 20 + ["c"] * 20
    pred_a = ["b"] * 20 + ["a"] * 140 + ["b"] * 20 + ["c"] * 20
    pred_b = ["a"] * 160 + ["b"] * 20 + ["a"] * 20
    ev = _eval_file(tmp_path / "data" / "eval.jsonl", 200, 1, grouped=False, golds=golds)
    a = _grouped_run(tmp_path / "a", ev, {"lora": pred_a}, "lora", metric="macro_f1", golds=golds)
    b = _grouped_run(tmp_path / "b", ev, {"lora": pred_b}, "lora", metric="macro_f1", golds=golds)
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--json"])
    assert res.exit_code == 1, res.output
    lora = json.loads(res.output)["levers"][0]
    from advisor.scoring import macro_f1

    assert lora["metric"] == "macro_f1" and lora["test"] == "paired bootstrap"
    assert lora["a"] == pytest.approx(macro_f1(golds, pred_a, ["a", "b", "c"]))
    assert lora["b"] == pytest.approx(macro_f1(golds, pred_b, ["a", "b", "c"]))
    assert lora["difference"]["value"] == pytest.approx(lora["b"] - lora["a"]) and lora["regressed"]
    # Without stored answers a set-level target cannot be recomputed: refused, not swapped for accuracy.
    plain_a = _stored_run(tmp_path / "pa", {"lora": GOOD}, "lora")
    plain_b = _stored_run(tmp_path / "pb", {"lora": GOOD}, "lora")
    for folder in (plain_a, plain_b):
        results = json.loads((folder / "results.json").read_text())
        results["target"]["metric"] = "macro_f1"
        (folder / "results.json").write_text(json.dumps(results))
    res = CliRunner().invoke(main, ["compare", str(plain_a), str(plain_b)])
    assert res.exit_code == 2 and "set statistic" in res.output


def test_the_gate_is_holm_over_the_levers_it_checks():
    """Five unchanged levers each tested at 5% failed 23% of unchanged runs; Holm holds 5%."""
    from advisor.compare import gate, regression_gate

    p = {"prompt": 0.03, "rag": 0.2, "lora": 0.5, "few": 0.04, "lr": 0.9}
    assert gate(p, 0.95) == {k: False for k in p}  # each below 0.05 alone; none survives Holm
    assert gate({"prompt": 0.005, "rag": 0.2}, 0.95) == {"prompt": True, "rag": False}
    rng = np.random.default_rng(1)
    same = {f"lever{i}": (rng.random(300) < 0.8).astype(float) for i in range(5)}
    assert not any(regression_gate(same, same).values())
    worse = {k: v.copy() for k, v in same.items()}
    worse["lever0"][np.flatnonzero(worse["lever0"] == 1)[:40]] = 0.0
    assert regression_gate(same, worse) == {"lever0": True, **{f"lever{i}": False for i in range(1, 5)}}
    with pytest.raises(ValueError, match="missing"):
        regression_gate(same, {"lever0": same["lever0"]})


def test_unchanged_reruns_under_intra_group_correlation_fail_the_gate_at_most_at_its_level():
    """Field finding: pairing without groups under intra-group correlation 0.3 failed 18.6% of
    unchanged levers. 1,000 simulated unchanged reruns, latent-normal: item difficulty (variance
    0.4) shared by both runs, a run-specific shift per group of 5 (0.3: the intra-group
    correlation of a run's latent scores) and item noise (0.3); 80% right. The gate fails at
    most 5% + 3 Monte-Carlo standard errors; ignoring the groups fails about twice as often."""
    from advisor.compare import regression_gate
    from advisor.stats import paired_test

    rng = np.random.default_rng(2028)
    groups = np.repeat(np.arange(60), 5)
    cut = -0.8416  # P(latent > cut) = 0.80
    fails = naive = 0
    sims = 1000
    for _ in range(sims):
        shared = rng.normal(0, np.sqrt(0.4), 300)
        runs = [(shared + rng.normal(0, np.sqrt(0.3), 60)[groups] + rng.normal(0, np.sqrt(0.3), 300) > cut)
                .astype(float) for _ in range(2)]
        fails += regression_gate({"x": runs[0]}, {"x": runs[1]}, 0.95, groups=groups)["x"]
        naive += paired_test(runs[1], runs[0])[1] < 0.05  # exact McNemar, groups ignored
    assert fails / sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims), fails / sims
    assert naive / sims > 0.08, naive / sims  # the scenario bites: ignoring the groups fails more often


def test_runs_of_two_tasks_are_refused_naming_both_and_an_unchanged_run_has_a_real_interval(tmp_path):
    """Fresh-user findings: compare across tasks said only 'no eval item id is in both runs'; two
    unchanged runs printed a zero-width interval (+0.000, +0.000) on 6 items."""
    a = _stored_run(tmp_path / "a", {"lora": GOOD}, "lora")
    other = _stored_run(tmp_path / "other", {"lora": GOOD}, "lora", task="countries")
    res = CliRunner().invoke(main, ["compare", str(a), str(other)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "task 't'" in res.output and "task 'countries'" in res.output and str(other) in res.output
    same = _stored_run(tmp_path / "same", {"lora": GOOD}, "lora")
    out = json.loads(CliRunner().invoke(main, ["compare", str(a), str(same), "--json"]).output)
    diff = out["levers"][0]["difference"]
    assert diff["value"] == 0 and diff["ci_low"] < -0.01 and diff["ci_high"] > 0.01  # Newcombe, not 0 to 0
