"""Human grades: a labels file in the task folder, filled by `advise label`, by hand or from a CSV, and
what they say of the judge (kappa, `advisor.judge.agreement`) and of the rate people would give (PPI,
`advisor.judge.ppi`).

labels.jsonl, one grade a line:

    {"example_id": "e12", "output_hash": "3f2a…", "criterion": "owns_problem", "grade": "pass"}

keyed by item, output hash (`advisor.judge.grading.text_hash` of the output text) and criterion: a
grade holds while the output is unchanged, for whichever lever or run produced that text. The last
line for a key wins. A CSV to import has the columns example_id, criterion, grade (pass/fail, yes/no,
1/0) and optionally output_hash (default: the hash of the run's output for that item; with several
levers, `--lever` picks whose).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.errors import InputError

LABELS_FILE = "labels.jsonl"
YES = {"pass", "p", "yes", "y", "1", "true"}
NO = {"fail", "f", "no", "n", "0", "false"}


def read_grade(text: str) -> float | None:
    """1.0 / 0.0 for a pass / fail written any usual way; None for anything else."""
    t = str(text).strip().lower()
    return 1.0 if t in YES else 0.0 if t in NO else None


def load_labels(path: Path) -> dict[tuple[str, str, str], float]:
    """(example_id, output_hash, criterion) -> 1.0 / 0.0; {} without a file. Raises InputError naming
    the file and line of a line that is not a grade."""
    out: dict[tuple[str, str, str], float] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            grade = read_grade(row["grade"])
            key = (str(row["example_id"]), str(row["output_hash"]), str(row["criterion"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError("not a grade: each line needs example_id, output_hash, criterion and grade",
                             file=path, line=n) from None
        if grade is None:
            raise InputError(f"grade {row['grade']!r} is not pass or fail", file=path, line=n, field="grade")
        out[key] = grade
    return out


def append_labels(path: Path, rows: list[tuple[str, str, str, float]]) -> None:
    """Add (example_id, output_hash, criterion, grade) rows to the labels file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for ex, oh, crit, grade in rows:
            f.write(json.dumps({"example_id": ex, "output_hash": oh, "criterion": crit,
                                "grade": "pass" if grade else "fail"}, ensure_ascii=False) + "\n")


def sample(items: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` of `items` drawn at random with `seed` (the same seed, the same sample), in drawn order."""
    rng = random.Random(seed)
    return rng.sample(items, min(n, len(items)))


def ask(items: list[dict[str, Any]], criteria: list[Any], read: Callable[[], str | None],
        write: Callable[[str], None], have: dict[tuple[str, str, str], float]) -> list[tuple[str, str, str, float]]:
    """Show each item (input, output, criterion) and read p(ass) / f(ail) / s(kip) / q(uit) per criterion;
    grades already in `have` are not asked again. `items`: {example_id, input, raw, output_hash}."""
    got: list[tuple[str, str, str, float]] = []
    for k, it in enumerate(items, start=1):
        pending = [c for c in criteria if (it["example_id"], it["output_hash"], c.name) not in have]
        if not pending:
            continue
        write(f"\n[{k}/{len(items)}] item {it['example_id']}\nINPUT:\n{it['input']}\nOUTPUT:\n{it['raw']}\n")
        for c in pending:
            while True:
                write(f"{c.name}: {c.question}\n  pass: {c.pass_}\n  fail: {c.fail}\n  [p]ass / [f]ail / [s]kip / "
                      "[q]uit > ")
                line = read()
                if line is None or line.strip().lower() in {"q", "quit"}:
                    return got
                answer = line.strip().lower()
                if answer in {"s", "skip", ""}:
                    break
                grade = read_grade(answer)
                if grade is not None:
                    got.append((it["example_id"], it["output_hash"], c.name, grade))
                    break
                write("  answer p, f, s or q\n")
    return got


def import_csv(path: Path, criteria: list[str], hashes: dict[str, str],
               known: dict[str, set[str]] | None = None) -> list[tuple[str, str, str, float]]:
    """Rows of a CSV of human grades (module docstring). `hashes`: example_id -> the run's output hash;
    `known`: example_id -> the hashes of every output of the run for it (default: `hashes`'). Raises
    InputError naming the CSV's line for an unknown item or criterion, a bad grade, a missing column, an
    output_hash that is no output of the run for that item, or a grade that contradicts an earlier line's
    (same item, output and criterion; naming both lines)."""
    if known is None:
        known = {ex: {oh} for ex, oh in hashes.items()}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read the CSV: {e.strerror}", file=path) from None
    reader = csv.DictReader(io.StringIO(text))
    need = {"example_id", "criterion", "grade"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise InputError(f"the CSV needs the columns {', '.join(sorted(need))} (output_hash optional); "
                         f"found {', '.join(reader.fieldnames or []) or 'none'}", file=path, line=1)
    out = []
    first: dict[tuple[str, str, str], tuple[int, float]] = {}
    for row in reader:
        line = reader.line_num
        ex, crit = (row.get("example_id") or "").strip(), (row.get("criterion") or "").strip()
        if ex not in hashes:
            raise InputError(f"unknown item '{ex}': not among the run's outputs", file=path, line=line,
                             field="example_id")
        if crit not in criteria:
            raise InputError(f"unknown criterion '{crit}'; the rubric's are {', '.join(criteria)}", file=path,
                             line=line, field="criterion")
        grade = read_grade(row.get("grade") or "")
        if grade is None:
            raise InputError(f"grade {row.get('grade')!r} is not pass or fail", file=path, line=line, field="grade")
        oh = (row.get("output_hash") or "").strip() or hashes[ex]
        if oh not in known.get(ex, {hashes[ex]}):
            raise InputError(f"output_hash '{oh}' is no output of the run for item '{ex}' (leave it blank for "
                             "the graded row's output)", file=path, line=line, field="output_hash")
        earlier = first.setdefault((ex, oh, crit), (line, grade))
        if earlier[1] != grade:
            raise InputError(f"item '{ex}' criterion '{crit}' is graded {'pass' if earlier[1] else 'fail'} at line "
                             f"{earlier[0]} and {'pass' if grade else 'fail'} at line {line}; keep one",
                             file=path, line=line, field="grade")
        out.append((ex, oh, crit, grade))
    return out


def judge_section(store: Any, run_id: int, levers: list[str], criteria: list[str],
                  labels: dict[tuple[str, str, str], float], confidence: float, min_kappa: float) -> dict[str, Any]:
    """results.json's `judge` section: lever -> criterion -> {judge: rate over scored, scored, unscored,
    human (grades matching this lever's outputs), agreement (kappa etc.; with 2+ items graded by both),
    ppi (the PPI++ interval on the rate people would give; with 2+ human and 1+ judge-only grades)}."""
    from advisor.judge.agreement import agreement
    from advisor.judge.ppi import ppi_mean

    out: dict[str, Any] = {}
    for lever in levers:
        grades = store.run_grades(run_id, lever)
        if not grades:
            continue
        row: dict[str, Any] = {}
        for crit in criteria:
            per = grades.get(crit, {})
            scored = {ex: g for ex, (_, g) in per.items() if g is not None}
            human = {ex: labels[(ex, oh, crit)] for ex, (oh, _) in per.items() if (ex, oh, crit) in labels}
            both = [ex for ex in human if ex in scored]
            rest = [ex for ex in scored if ex not in human]
            entry: dict[str, Any] = {
                "judge_rate": sum(scored.values()) / len(scored) if scored else None, "scored": len(scored),
                "unscored": len(per) - len(scored), "human": len(human),
                "human_rate": sum(human.values()) / len(human) if human else None,
                "agreement": None, "ppi": None}
            if len(both) >= 2:
                entry["agreement"] = agreement([human[e] for e in both], [scored[e] for e in both],
                                               confidence=confidence, min_kappa=min_kappa).as_dict()
            if len(both) >= 2 and rest:
                est = ppi_mean([human[e] for e in both], [scored[e] for e in both], [scored[e] for e in rest],
                               confidence=confidence)
                entry["ppi"] = {"value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
                                "lam": est.lam, "n_human": est.n_human, "n_judge": est.n_judge,
                                "effective_n": est.effective_n, "human_only": list(est.human_only)}
            row[crit] = entry
        out[lever] = row
    return out


__all__ = ["LABELS_FILE", "append_labels", "ask", "import_csv", "judge_section", "load_labels", "read_grade", "sample"]
