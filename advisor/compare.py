"""`advise compare RUN_A RUN_B`: two stored runs side by side, item by item, as a CI gate.

Each lever present in both runs is compared on the task's target metric over the eval items
both scored (matched by example id), B − A:

- an item-mean metric (accuracy, exact match, token F1): `advisor.stats.paired_difference`
  — without eval groups a paired bootstrap interval and, for binary scores, the exact
  McNemar test; with groups a cluster-robust t-test on the group totals of the
  differences (k − 1 df), whose interval it shows;
- a set statistic (macro-F1): a paired bootstrap of the statistic's difference, recomputed
  from both runs' stored answers (`run_items`), whole groups resampled when there are
  groups (`advisor.stats.paired_statistic_difference`). It is never gated on accuracy instead.

Eval groups (the examples' optional `group` field: items about one passage are not
independent) are read from the eval file each stored item came from (`run_items.source`,
"file:line"), each line checked against the stored id and input. The store keeps no group
of its own; re-reading the file is robust to the task file being moved or run with
`--set data.eval=...` (the stored line is the one that was scored), and a file that is gone or
changed is not guessed at: the items are then paired as independent and the output says so
(`groups.note`). Ignoring groups made 18.6% of unchanged levers "significantly different"
under an intra-group correlation of 0.3.

The gate. A lever regresses when B is significantly worse: its one-sided p-value for
"B worse than A" is rejected by Holm's step-down procedure at 1 − confidence over the
levers the gate checks — RUN_A's recommended lever, or every lever when RUN_A recommended
none — so the chance that an unchanged run fails the gate is at most 1 − confidence
however many levers are checked (testing each of 5 levers at 5% failed 23% of unchanged
runs). Levers outside the gate are marked regressed/improved with Holm over every lever
compared (information only). `regression_gate` is the gate on plain arrays; the
calibration bench (bench/verdict_calibration.py) runs it on simulated unchanged levers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import InputError
from advisor.report.document import StoredRun
from advisor.report.fmt import prompt_form_label
from advisor.stats import PairedDifference, holm, paired_difference, paired_statistic_difference, paired_test
from advisor.store import connect_read_only


@dataclass
class LeverChange:
    lever: str
    metric: str  # always the task's target metric
    n: int  # items scored in both runs
    a: float
    b: float
    difference: dict[str, float]  # B − A: value, ci_low, ci_high (two-sided, task confidence)
    mcnemar_p: float | None  # exact McNemar, two-sided: ungrouped binary scores only
    test: str  # the paired test behind p_worse / p_better
    p_worse: float  # one-sided p, H1: B worse than A (unadjusted)
    p_better: float  # one-sided p, H1: B better than A (unadjusted)
    regressed: bool  # B significantly worse, Holm over this lever's family (see the module docstring)
    improved: bool  # B significantly better, the same family
    gated: bool  # this lever's regression fails the gate


def gate(p_worse: Mapping[str, float], confidence: float = 0.95) -> dict[str, bool]:
    """Which levers fail the gate: Holm over their one-sided "B worse than A" p-values.

    `p_worse`: lever -> unadjusted one-sided p (the levers the gate checks, nothing else).
    Returns lever -> regressed. The chance that any unchanged lever is flagged is at most
    1 − confidence (Holm 1979, `advisor.stats.holm`).
    """
    return holm(p_worse, 1 - confidence)


def regression_gate(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]], confidence: float = 0.95,
                    *, groups: Sequence[Any] | None = None) -> dict[str, bool]:
    """The gate on arrays: lever -> whether B is significantly worse than A, Holm over all levers given.

    `a[lever]`, `b[lever]`: per-item scores of an item-mean metric, shape (n,), aligned item
    by item; `groups`: one label per item or None. Each lever's one-sided p comes from
    `advisor.stats.paired_test` (exact McNemar ungrouped; cluster-robust t-test with groups),
    as in `compare_runs`. Raises ValueError when a lever is missing from b or lengths differ.
    """
    missing = [k for k in a if k not in b]
    if missing:
        raise ValueError(f"levers missing from b: {missing}")
    return gate({k: paired_test(b[k], a[k], groups=groups)[1] for k in a}, confidence)


def _run_items(run: StoredRun) -> dict[str, dict[str, dict[str, Any]]]:
    """lever -> example id -> {"source", "input", "gold", "output"} of the store's run that wrote the
    record (`advisor.report.document.load_run` picks it, for every reader alike); {} when the store
    has none (older stores)."""
    db_path = run.run_dir / "advise.sqlite"
    if run.run_id is None or not db_path.is_file():
        return {}
    db = connect_read_only(db_path)
    try:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for lever, ex_id, source, inp, gold, output in db.execute(
                "SELECT lever, example_id, source, input, gold, output FROM run_items WHERE run_id=?", (run.run_id,)):
            out.setdefault(lever, {})[ex_id] = {"source": source, "input": inp, "gold": json.loads(gold),
                                                "output": json.loads(output)}
        return out
    except sqlite3.DatabaseError:  # no run_items table (a store from before it existed)
        return {}
    finally:
        db.close()


def eval_groups(items: Mapping[str, Mapping[str, dict[str, Any]]]) -> tuple[dict[str, Any] | None, str]:
    """(example id -> group label, or None; a note saying where the groups came from).

    `items`: lever -> example id -> stored row with "source" ("file:line") and "input". Each
    line is re-read and must hold the stored id and input; an item whose example has no
    `group` is its own group. None with a note when no example has a group, when nothing
    was stored, or when a file is missing or changed since the run (never guessed).
    """
    from advisor.data import _records  # the reader the run used: JSONL and CSV, same line numbers

    sources: dict[str, dict[str, Any]] = {}
    for rows in items.values():
        for ex_id, row in rows.items():
            sources.setdefault(ex_id, row)
    if not sources:
        return None, "eval groups unknown (the store holds no per-item rows): items paired as independent"
    files: dict[str, dict[int, dict[str, Any]]] = {}
    groups: dict[str, Any] = {}
    for ex_id, row in sources.items():
        path, _, line = str(row["source"]).rpartition(":")
        try:
            if path not in files:
                files[path] = dict(_records(Path(path)))
            rec = files[path][int(line)]
        except (InputError, KeyError, ValueError, OSError):
            return None, (f"eval groups unknown ({path or row['source']} is gone or changed since the run): "
                          "items paired as independent")
        rec_id = str(rec["id"]) if rec.get("id") not in (None, "") else f"eval-{line}"
        if rec_id != ex_id or str(rec.get("input")) != row["input"]:
            return None, (f"eval groups unknown ({path} line {line} no longer holds item {ex_id}): "
                          "items paired as independent")
        groups[ex_id] = rec.get("group")
    if all(g is None for g in groups.values()):
        return None, "no eval groups: items paired as independent"
    out = {i: (g if g is not None else f"\x00{i}") for i, g in groups.items()}
    return out, f"{len(set(out.values()))} eval groups from {', '.join(sorted(files))}"


def _families(common: list[str], gated: list[str]) -> dict[str, list[str]]:
    """Each lever's Holm family: the gated levers for a gated lever, every lever compared otherwise."""
    return {name: (gated if name in gated else common) for name in common}


def _set_difference(name: str, metric: str, ids: list[str], ia: Mapping[str, dict[str, Any]],
                    ib: Mapping[str, dict[str, Any]], conf: float, groups: list[Any] | None,
                    seed: int) -> tuple[float, float, PairedDifference]:
    """(A's value, B's value, B − A) of a set statistic (macro-F1) recomputed from stored answers."""
    from advisor.scoring import SET_METRICS, set_statistic

    if metric not in SET_METRICS:
        raise InputError(f"lever {name}: the target metric {metric} has no per-item scores to pair")
    golds = [ia[i]["gold"] for i in ids]
    pa, pb = [ia[i]["output"] for i in ids], [ib[i]["output"] for i in ids]
    # The task's labels are not in the record; macro_f1 averages over the labels present in gold
    # or predictions anyway, so the labels seen in either run give the same figure.
    labels = sorted({str(x) for x in golds + pa + pb if isinstance(x, str)})

    fa, fb = set_statistic(metric, golds, pa, labels), set_statistic(metric, golds, pb, labels)
    everything = np.arange(len(ids))
    diff = paired_statistic_difference(len(ids), lambda idx: fb(idx) - fa(idx), conf, groups=groups, seed=seed)
    return fa(everything), fb(everything), diff


def compare_runs(a: StoredRun, b: StoredRun, *, groups: Mapping[str, Any] | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """The comparison as plain data: {"metric", "confidence", "gated", "gate", "groups", "levers": [...],
    "regressed": bool, ...}.

    `groups`: example id -> eval group; by default read back from the eval file (`eval_groups`).
    The target metric is the one compared: per-item scores for an item-mean metric, the
    stored answers (run_items) for macro-F1. Raises InputError when the runs share no lever
    or no example id, or when a set-level target cannot be recomputed from the store.
    """
    if a.record.task != b.record.task:  # different tasks share lever names but not items
        raise InputError(f"{a.run_dir} is a run of task {a.record.task!r} and {b.run_dir} of task "
                         f"{b.record.task!r}: compare two runs of the same task")
    for run in (a, b):  # pairing needs the per-item rows of the very run each results.json records
        if run.run_id is None:
            raise InputError(f"no per-item scores to pair: {run.items_missing}", file=run.run_dir / "advise.sqlite")
    notes = run_differences(a, b)
    target = a.results["target"]
    metric = target["metric"]
    conf = float(target.get("confidence", 0.95))
    rec = a.record.verdict.lever
    names_a = [lv["name"] for lv in a.results["levers"]]
    items_a, items_b = _run_items(a), _run_items(b)
    per_item = all(metric in a.scores.get(n, {}) for n in names_a if n in a.scores)
    if per_item:
        common = [n for n in names_a if n in b.scores and n in a.scores]
    else:
        common = [n for n in names_a if n in items_a and n in items_b]
        if not common and any(n in b.scores and n in a.scores for n in names_a):
            raise InputError(f"the target metric {metric} is a set statistic, recomputed from each run's stored "
                             "answers (run_items), and one of these stores has none: rerun with this advise",
                             file=a.run_dir / "advise.sqlite")
    if not common:
        raise InputError(f"{a.run_dir} and {b.run_dir} have no lever in common")
    if groups is None:
        found, group_note = eval_groups(items_a or items_b)
    else:
        found, group_note = dict(groups), f"{len(set(groups.values()))} eval groups (given)"
    gated = [rec] if rec in common else common
    tests: dict[str, tuple[int, float, float, PairedDifference]] = {}
    for name in common:
        if per_item:
            sa, sb = a.scores[name][metric], b.scores[name].get(metric, {})
        else:
            sa, sb = items_a[name], items_b[name]
        ids = [i for i in sa if i in sb]
        if not ids:
            raise InputError(f"lever {name}: no eval item id is in both {a.run_dir} and {b.run_dir} "
                             "(different eval files?)")
        g = None if found is None else [found.get(i, f"\x00{i}") for i in ids]
        if per_item:
            xa, xb = [sa[i] for i in ids], [sb[i] for i in ids]
            d = paired_difference(xb, xa, conf, groups=g, seed=seed)
            va, vb = float(np.mean(xa)), float(np.mean(xb))
        else:
            va, vb, d = _set_difference(name, metric, ids, sa, sb, conf, g, seed)
        tests[name] = (len(ids), va, vb, d)
    families = _families(common, gated)
    worse = {tuple(f): gate({n: tests[n][3].p_less for n in f}, conf) for f in map(tuple, families.values())}
    better = {tuple(f): gate({n: tests[n][3].p_greater for n in f}, conf) for f in map(tuple, families.values())}
    changes = []
    for name in common:
        n, va, vb, d = tests[name]
        fam = tuple(families[name])
        changes.append(LeverChange(name, metric, n, va, vb, d.as_dict(), d.mcnemar_p, d.test, d.p_less,
                                   d.p_greater, worse[fam][name], better[fam][name], name in gated))
    return {"run_a": str(a.run_dir), "run_b": str(b.run_dir), "metric": metric, "confidence": conf,
            "recommended_in_a": rec, "gated": gated,
            "gate": {"method": "Holm", "alpha": round(1 - conf, 10), "levers": gated},
            "groups": {"n_groups": None if found is None else len(set(found.values())), "note": group_note},
            "levers": [asdict(c) for c in changes],
            "regressed": any(c.regressed and c.gated for c in changes), "differences": notes}


def _precisions(results: Mapping[str, Any]) -> str | None:
    """The precisions a run's local models scored in (results.json `compute`, advisor.compute), e.g.
    "bf16"; None for a run without a local model or from before the choice was recorded."""
    models = (results.get("compute") or {}).get("models") or {}
    found = sorted({str((m.get("scoring") or {}).get("precision")) for m in models.values() if m.get("scoring")})
    return ", ".join(found) or None


def run_differences(a: StoredRun, b: StoredRun) -> list[str]:
    """What differs between the two runs' settings, as lines to print (model, prompt, ranking, eval).

    Raises InputError when both scored the same number of eval items but not the same items
    (their eval data hashes differ): pairing by example id would then pair different questions.
    """
    pa, pb = a.results.get("provenance") or {}, b.results.get("provenance") or {}
    da, db = pa.get("data") or {}, pb.get("data") or {}
    notes = []
    if da.get("eval") and db.get("eval") and da["eval"] != db["eval"]:
        if da.get("n_eval") == db.get("n_eval"):
            raise InputError(f"{a.run_dir} and {b.run_dir} scored different eval sets of {da.get('n_eval')} items "
                             f"(eval data {da['eval']} and {db['eval']}): items paired by id would be different "
                             "questions; compare runs of the same eval set")
        notes.append(f"eval set: {da.get('n_eval')} and {db.get('n_eval')} items (e.g. --limit); paired on the ids "
                     "in both")
    sa, sb = a.results.get("scoring") or {}, b.results.get("scoring") or {}
    for label, x, y in (("task", a.results.get("task"), b.results.get("task")),
                        ("model", pa.get("model"), pb.get("model")),
                        ("prompt hash", pa.get("prompt_sha256"), pb.get("prompt_sha256")),
                        ("option ranking", sa.get("option_ranking"), sb.get("option_ranking")),
                        ("precision", _precisions(a.results), _precisions(b.results))):
        if x != y:
            notes.append(f"{label}: {x} -> {y}")
    # Each row's own ways of reading a label: its ranking method (scoring.option_ranking: auto chooses
    # one per row) and, for an API model, its classification path and off-label share; and a LoRA
    # row's prompt form (prompt_form: auto chooses one per row).
    rows_b = {lv.get("name"): lv for lv in b.results.get("levers", [])}
    for lv in a.results.get("levers", []):
        other = rows_b.get(lv.get("name"))
        if other is None:
            continue
        for label, read in (("label ranking", lambda r: (r.get("option_ranking") or {}).get("method")),
                            ("classification path", lambda r: r.get("classification_path")),
                            ("prompt form", prompt_form_label),  # a LoRA row's (issue 29)
                            ("training precision", lambda r: ((r.get("artifact") or {}).get("info") or {})
                             .get("training_precision")),
                            ("off-label share", lambda r: (r.get("off_label") or {}).get("share"))):
            x, y = read(lv), read(other)
            if x != y:
                notes.append(f"{lv['name']}: {label} {x} -> {y}")
    return notes


def print_comparison(console: Any, out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    pct = int(round(100 * out["confidence"]))
    console.print(f"A: {out['run_a']}\nB: {out['run_b']}")
    console.print(f"groups: {out['groups']['note']}", markup=False, highlight=False)
    for note in out.get("differences") or []:
        console.print(f"differs: {note}", markup=False, highlight=False)
    metrics = sorted({c["metric"] for c in out["levers"]})
    table = Table(title=f"{', '.join(metrics)}: B − A per lever, paired by example id", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("lever", "n", "A", "B", f"B − A ({pct}% CI)", "p worse", "change"):
        table.add_column(col, justify="left" if col in {"lever", "change"} else "right", no_wrap=True)
    for c in out["levers"]:
        d = c["difference"]
        change = "regressed" if c["regressed"] else "improved" if c["improved"] else "no sig. change"
        style = "bold red" if c["regressed"] and c["gated"] else None
        table.add_row(c["lever"] + (" *" if c["gated"] else ""), str(c["n"]), f"{c['a']:.3f}",
                      f"{c['b']:.3f}", f"{d['value']:+.3f} ({d['ci_low']:+.3f}, {d['ci_high']:+.3f})",
                      f"{c['p_worse']:.3g}", change, style=style)
    tests = sorted({c["test"] for c in out["levers"]})
    alpha = out["gate"]["alpha"]
    table.caption = ("* gated: " + ("RUN_A's recommended lever" if out["recommended_in_a"] else
                                    "every lever (RUN_A recommended none)")
                     + f"; significant: Holm at {alpha:g} over the gated levers (others: over every lever)"
                     + f"; p worse: one-sided p that B is worse than A, from: {', '.join(tests)}")
    table.caption_justify = "left"
    console.print(table)
    console.print("FAIL: a gated lever regressed significantly" if out["regressed"] else
                  "OK: no gated lever regressed significantly")
