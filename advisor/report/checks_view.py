"""The task's checks (advisor.checks) as readers see them: per-lever pass rates, the commonest
reasons for a fail, and a few outputs side by side for the same input with what each passed.

People would rather read replies than rates: the side-by-side items are chosen by a hash of the
task and the example id (the same items every time, and the same items for every lever), among
the items every lever answered. The terminal scorecard and the report read the same columns.
"""

from __future__ import annotations

import hashlib
from typing import Any

from advisor.report.blocks import Block, Bullets, Heading, Paragraph, Section, Table
from advisor.report.fmt import cut, interval, num

SIDE_BY_SIDE = 4  # items shown with every lever's output
PASS_ALL = "pass_all"


def check_columns(r: dict[str, Any]) -> list[str]:
    """The check metrics in the order the task declared them (a json_schema check's strict_json and
    lenient_json before its own), then pass_all; [] for a run without checks."""
    cols: list[str] = []
    for c in r.get("checks") or []:
        extra = [m for m in c["metrics"] if m != c["name"]]
        cols += [*extra, c["name"]]
    return [*cols, PASS_ALL] if cols else []


def _rule(r: dict[str, Any], metric: str) -> str:
    for c in r.get("checks") or []:
        if metric == c["name"]:
            return c["rule"] if c["kind"] == metric else f"({c['kind']}) {c['rule']}"
    if metric == r["target"]["metric"] and metric not in check_columns(r):
        return "the target metric, against the gold answers"
    return {"strict_json": "the whole answer is JSON", "lenient_json": "a JSON object found (fences and prose "
            "stripped)", PASS_ALL: "every check above passes"}.get(metric, "")


def failure_lines(r: dict[str, Any]) -> list[str]:
    """Per lever and check with any fail: how many items failed and why, commonest reason first."""
    lines = []
    for lv in r["levers"]:
        found = (lv.get("details") or {}).get("checks") or {}
        n = lv.get("n_eval") or 0
        for name, info in found.items():
            failures = info.get("failures") or {}
            if not failures:
                continue
            why = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items(), key=lambda kv: -kv[1]))
            failed = round((1 - float(info.get("rate", 1.0))) * n)
            lines.append(f"{lv['name']}: {name} failed on {failed} of {n} items ({why})")
    return lines


def side_by_side_ids(r: dict[str, Any], answered: list[set[str]], k: int = SIDE_BY_SIDE) -> list[str]:
    """At most `k` example ids answered by every lever: the smallest SHA-256 of (task, id)."""
    common = set.intersection(*answered) if answered else set()
    return sorted(common, key=lambda i: hashlib.sha256(f"{r['task']}\x1f{i}".encode()).hexdigest())[:k]


def _verdicts(r: dict[str, Any], scores: dict[str, dict[str, float]], reasons: dict[str, str], ex_id: str) -> str:
    marks = []
    for c in r.get("checks") or []:
        name = c["name"]
        passed = (scores.get(name) or {}).get(ex_id)
        if passed is None:
            continue
        marks.append(f"✓ {name}" if passed >= 1.0 else f"✗ {name}" + (f" ({reasons[name]})" if reasons.get(name)
                                                                     else ""))
    return "; ".join(marks) or "–"


def checks_section(r: dict[str, Any], run: Any) -> Section | None:
    """The report's "Checks" section (`run`: advisor.report.document.StoredRun); None without checks."""
    cols = check_columns(r)
    if not cols:
        return None
    level = f"{round(100 * r['target'].get('confidence', 0.95))}%"
    metric = r["target"]["metric"]
    if metric not in cols:  # a gold target (exact match) beside the checks: form against content
        cols = [metric, *cols]
    rows = [[lv["name"], *[interval((lv.get("metrics") or {}).get(m)) for m in cols]] for lv in r["levers"]]
    blocks: list[Block] = [
        Paragraph("Each check is applied to every output, with no model and no gold answer: a pass rate per lever, "
                  f"with its {level} interval. " + "; ".join(f"{m}: {_rule(r, m)}" for m in cols) + "."),
        Table(["lever", *cols], rows, caption="Pass rate per check on the eval set" + (
            f", beside the target {metric}." if metric not in check_columns(r) else "."),
              numeric=[False, *[True] * len(cols)]),
    ]
    if "strict_json" in cols:
        blocks.append(Paragraph("The gap between strict_json and lenient_json is the format a model wraps around "
                                "its JSON (fences, prose): what fine-tuning on the format usually removes.", "note"))
    lines = failure_lines(r)
    if lines:
        blocks += [Heading("Why outputs failed"), Bullets(lines)]
    blocks += _side_by_side(r, run)
    return Section("checks", "Checks on every output", blocks)


def _side_by_side(r: dict[str, Any], run: Any) -> list[Block]:
    items = run.items or {}
    names = [lv["name"] for lv in r["levers"] if lv["name"] in items]
    if not names:
        return [Paragraph("No per-item answers stored, so no outputs can be shown side by side.", "note")]
    ids = side_by_side_ids(r, [set(items[n].answers) for n in names])
    if not ids:
        return []
    blocks: list[Block] = [Heading("Outputs side by side"), Paragraph(
        f"{len(ids)} eval items chosen by a hash of the item (the same every time), each lever's output for the "
        "same input, with the checks it passed (✓) and failed (✗, with why).", "note")]
    for ex_id in ids:
        first = items[names[0]].answers[ex_id]
        blocks.append(Heading(f"{ex_id}: {cut(first['input'], 240)}"))
        blocks.append(Table(["lever", "output", "checks"],
                            [[n, cut(items[n].answers[ex_id]["raw"], 600),
                              _verdicts(r, run.scores.get(n, {}), items[n].reasons.get(ex_id, {}), ex_id)]
                             for n in names]))
    return blocks


def terminal_rows(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(columns, one row per lever of pass rates) for the terminal scorecard's checks table."""
    cols = check_columns(r)
    return cols, [[lv["name"], *[num(((lv.get("metrics") or {}).get(m) or {}).get("value")) for m in cols]]
                  for lv in r["levers"]]
