"""`advise compare RUN_A RUN_B`: two stored runs side by side, item by item, as a CI gate.

Each lever present in both runs is compared on the target metric over the eval items
both scored (matched by example id), with a paired bootstrap interval of B − A and, for
binary scores, McNemar's exact test. A lever regresses when B is significantly worse:
the one-sided upper bound of B − A (at the task's confidence) is below zero. The gate
watches RUN_A's recommended lever, or every lever when RUN_A recommended none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from advisor.errors import InputError
from advisor.report.document import StoredRun
from advisor.stats import paired_difference


@dataclass
class LeverChange:
    lever: str
    metric: str
    n: int  # items scored in both runs
    a: float
    b: float
    difference: dict[str, float]  # B − A: value, ci_low, ci_high (two-sided, task confidence)
    mcnemar_p: float | None
    regressed: bool  # B significantly worse (one-sided)
    improved: bool  # B significantly better (one-sided)
    gated: bool  # this lever's regression fails the gate


def compare_runs(a: StoredRun, b: StoredRun) -> dict[str, Any]:
    """The comparison as plain data: {"metric", "confidence", "gated", "levers": [...], "regressed": bool}.

    Raises InputError when the runs share no lever or no example id.
    """
    notes = run_differences(a, b)
    target = a.results["target"]
    conf = float(target.get("confidence", 0.95))
    rec = a.record.verdict.lever
    common = [lv["name"] for lv in a.results["levers"] if lv["name"] in b.scores and lv["name"] in a.scores]
    if not common:
        raise InputError(f"{a.run_dir} and {b.run_dir} have no lever in common")
    gated = [rec] if rec in common else common
    changes: list[LeverChange] = []
    for name in common:
        metric = target["metric"]
        if metric not in a.scores[name]:  # a set-level metric (macro-F1): pair on a per-item one
            metric = "accuracy" if "accuracy" in a.scores[name] else sorted(a.scores[name])[0]
        sa, sb = a.scores[name][metric], b.scores[name].get(metric, {})
        ids = [i for i in sa if i in sb]
        if not ids:
            raise InputError(f"lever {name}: no eval item id is in both runs")
        xa, xb = [sa[i] for i in ids], [sb[i] for i in ids]
        shown = paired_difference(xb, xa, conf)
        one_sided = paired_difference(xb, xa, 2 * conf - 1)
        regressed = one_sided.high < 0
        changes.append(LeverChange(name, metric, len(ids), sum(xa) / len(xa), sum(xb) / len(xb), shown.as_dict(),
                                   shown.mcnemar_p, regressed, one_sided.low > 0, name in gated))
    return {"run_a": str(a.run_dir), "run_b": str(b.run_dir), "metric": target["metric"], "confidence": conf,
            "recommended_in_a": rec, "gated": gated, "levers": [asdict(c) for c in changes],
            "regressed": any(c.regressed and c.gated for c in changes), "differences": notes}


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
                        ("option ranking", sa.get("option_ranking"), sb.get("option_ranking"))):
        if x != y:
            notes.append(f"{label}: {x} -> {y}")
    # Each row's own label-ranking method (scoring.option_ranking: auto chooses one per row).
    methods_b = {lv.get("name"): (lv.get("option_ranking") or {}).get("method") for lv in b.results.get("levers", [])}
    for lv in a.results.get("levers", []):
        x, y = (lv.get("option_ranking") or {}).get("method"), methods_b.get(lv.get("name"))
        if lv.get("name") in methods_b and x != y:
            notes.append(f"{lv['name']}: label ranking {x} -> {y}")
    return notes


def print_comparison(console: Any, out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    pct = int(round(100 * out["confidence"]))
    console.print(f"A: {out['run_a']}\nB: {out['run_b']}")
    for note in out.get("differences") or []:
        console.print(f"differs: {note}", markup=False, highlight=False)
    metrics = sorted({c["metric"] for c in out["levers"]})
    table = Table(title=f"{', '.join(metrics)}: B − A per lever, paired by example id", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("lever", "n", "A", "B", f"B − A ({pct}% CI)", "McNemar p", "change"):
        table.add_column(col, justify="left" if col in {"lever", "change"} else "right", no_wrap=True)
    for c in out["levers"]:
        d = c["difference"]
        change = "regressed" if c["regressed"] else "improved" if c["improved"] else "no sig. change"
        style = "bold red" if c["regressed"] and c["gated"] else None
        table.add_row(c["lever"] + (" *" if c["gated"] else ""), str(c["n"]), f"{c['a']:.3f}",
                      f"{c['b']:.3f}", f"{d['value']:+.3f} ({d['ci_low']:+.3f}, {d['ci_high']:+.3f})",
                      "–" if c["mcnemar_p"] is None else f"{c['mcnemar_p']:.3g}", change, style=style)
    table.caption = "* gated: " + ("RUN_A's recommended lever" if out["recommended_in_a"] else
                                   "every lever (RUN_A recommended none)")
    table.caption_justify = "left"
    console.print(table)
    console.print("FAIL: a gated lever regressed significantly" if out["regressed"] else
                  "OK: no gated lever regressed significantly")
