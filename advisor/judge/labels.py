"""Human grades: a labels file in the task folder, filled by `advise label`, by hand or from a CSV, and
what they say of the judge (kappa, `advisor.judge.agreement`) and of the rate people would give (PPI,
`advisor.judge.ppi`).

labels.jsonl, one grade a line:

    {"example_id": "e12", "output_hash": "3f2a…", "criterion": "owns_problem", "grade": "pass"}

keyed by item, output hash (`advisor.judge.grading.text_hash` of the output text) and criterion: a
grade holds while the output is unchanged, for whichever lever or run produced that text. The last
line for a key wins. Lines written by `advise label` also say who and when (`by`, the login name;
`at`, UTC) and where the grade came from (`source`: "asked" or "import FILE:LINE"); a grade that
overwrote another (`--replace`) keeps the one it replaced under `replaces`. Lines without these
fields (written by hand, or before) are read the same.

A CSV to import has the columns example_id, criterion, grade (pass/fail, yes/no, 1/0) and optionally
output_hash (default: the hash of the run's output for that item; with several levers, `--lever`
picks whose). A CSV grade that contradicts one already in labels.jsonl (same item, output hash and
criterion) is refused unless `--replace` is given; one that agrees is not written again.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import random
from collections.abc import Callable
from datetime import datetime, timezone
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
    return {key: got["grade"] for key, got in load_label_lines(path).items()}


def load_label_lines(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(example_id, output_hash, criterion) -> the line that holds its grade (the last for the key):
    {grade: 1.0 / 0.0, line: its 1-based number, by, at, source: as recorded, else None}; {} without a
    file. Raises InputError naming the file and line of a line that is not a grade."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
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
        out[key] = {"grade": grade, "line": n, "by": row.get("by"), "at": row.get("at"), "source": row.get("source")}
    return out


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment: left unrecorded
        return None


def _word(grade: float) -> str:
    return "pass" if grade else "fail"


def append_labels(path: Path, rows: list[tuple[str, str, str, float]], source: str | list[str] = "asked",
                  replaces: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
    """Add (example_id, output_hash, criterion, grade) rows to the labels file, each with who (`by`), when
    (`at`, UTC to the second) and `source` (one for all rows, or one per row, e.g. "import grades.csv:4").
    `replaces`: key -> the labels-file line (`load_label_lines`) a row overwrites, kept on the new line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    by = _login()
    sources = source if isinstance(source, list) else [source] * len(rows)
    with path.open("a", encoding="utf-8") as f:
        for (ex, oh, crit, grade), src in zip(rows, sources):
            line: dict[str, Any] = {"example_id": ex, "output_hash": oh, "criterion": crit, "grade": _word(grade),
                                    "by": by, "at": at, "source": src}
            old = (replaces or {}).get((ex, oh, crit))
            if old is not None:
                line["replaces"] = {"grade": _word(old["grade"]), "line": old["line"], "by": old.get("by"),
                                    "at": old.get("at"), "source": old.get("source")}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


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
               known: dict[str, set[str]] | None = None,
               have: dict[tuple[str, str, str], dict[str, Any]] | None = None, replace: bool = False,
               labels_file: Path | str = LABELS_FILE) -> list[tuple[str, str, str, float]]:
    """Rows of a CSV of human grades (module docstring), as (example_id, output_hash, criterion, grade),
    each key once. `hashes`: example_id -> the run's output hash; `known`: example_id -> the hashes of
    every output of the run for it (default: `hashes`'); `have`: the labels file's grades
    (`load_label_lines` of `labels_file`): a CSV grade equal to one there is left out (nothing to write),
    and one that contradicts it is refused unless `replace`. Raises InputError naming the CSV's line for an
    unknown item or criterion, a bad grade, a missing column, an output_hash that is no output of the run
    for that item, a grade that contradicts an earlier line's (same item, output and criterion; naming
    both lines), or, without `replace`, one that contradicts the labels file's (naming its line and, where
    recorded, who gave it and when). `import_csv_sources` gives each returned row's "import FILE:LINE"."""
    rows, _ = _import_csv(path, criteria, hashes, known, have or {}, replace, labels_file)
    return rows


def import_csv_sources(path: Path, criteria: list[str], hashes: dict[str, str],
                       known: dict[str, set[str]] | None = None,
                       have: dict[tuple[str, str, str], dict[str, Any]] | None = None, replace: bool = False,
                       labels_file: Path | str = LABELS_FILE) -> tuple[list[tuple[str, str, str, float]], list[str]]:
    """`import_csv`'s rows and, per row, where it came from ("import FILE:LINE", the labels file's `source`)."""
    return _import_csv(path, criteria, hashes, known, have or {}, replace, labels_file)


def _import_csv(path: Path, criteria: list[str], hashes: dict[str, str], known: dict[str, set[str]] | None,
                have: dict[tuple[str, str, str], dict[str, Any]], replace: bool,
                labels_file: Path | str) -> tuple[list[tuple[str, str, str, float]], list[str]]:
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
    out: list[tuple[str, str, str, float]] = []
    sources: list[str] = []
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
        key = (ex, oh, crit)
        if key in first:
            earlier = first[key]
            if earlier[1] != grade:
                raise InputError(f"item '{ex}' criterion '{crit}' is graded {_word(earlier[1])} at line "
                                 f"{earlier[0]} and {_word(grade)} at line {line}; keep one",
                                 file=path, line=line, field="grade")
            continue  # the same grade twice: once is enough
        first[key] = (line, grade)
        old = have.get(key)
        if old is not None and old["grade"] == grade:
            continue  # already recorded: nothing to write
        if old is not None and not replace:
            who = ", ".join(f"{k} {old[k]}" for k in ("by", "at", "source") if old.get(k))
            raise InputError(f"item '{ex}' criterion '{crit}' is graded {_word(grade)} here but {_word(old['grade'])} "
                             f"at {labels_file}:{old['line']}{f' ({who})' if who else ''}; fix the CSV, or give "
                             "--replace to overwrite (the grade it replaces is kept on the new line)",
                             file=path, line=line, field="grade")
        out.append((ex, oh, crit, grade))
        sources.append(f"import {path}:{line}")
    return out, sources


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


__all__ = ["LABELS_FILE", "append_labels", "ask", "import_csv", "import_csv_sources", "judge_section", "load_label_lines",
           "load_labels", "read_grade", "sample"]
