"""The review loop for likely wrong gold answers: write the suspects to a CSV a person edits, then apply
the reviewed file to a corrected copy of the data, with a change log. The original files are never
modified.

    advise audit task.yaml --review review.csv        # write_review: one row per suspect, likeliest first
    # a person fills `decision` (keep / relabel / drop), edits `suggested` where needed, `reviewer`, `reviewed_at`
    advise apply-review task.yaml review.csv --out fixed/   # apply_review: fixed/train.jsonl, fixed/eval.jsonl,
                                                            # fixed/changes.jsonl

Every row carries `hash`, sha256 of the item's input and whole gold output as the audit read them
(`advisor.audit.label_errors.record_hash`): a review written against other data (an item since edited,
relabelled or removed) is refused, naming the row, before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from advisor.audit.label_errors import Suspect, record_hash
from advisor.audit.sources import Record, load_records
from advisor.errors import InputError
from advisor.spec import Task
from advisor.textio import read_text

COLUMNS = ["rank", "split", "check", "id", "where", "field", "input", "given", "suggested", "score", "why",
           "decision", "reviewer", "reviewed_at", "note", "hash"]
REQUIRED = ["split", "id", "field", "suggested", "decision", "hash"]
DECISIONS = ("keep", "relabel", "drop")
CHANGE_LOG = "changes.jsonl"


def _cell(value: Any) -> str:
    """A value as one CSV cell: text as is, None as empty, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def write_review(path: Path, suspects: list[Suspect]) -> int:
    """Write `suspects` (already in review order: eval first, each split likeliest first) to `path` as CSV
    (UTF-8, header `COLUMNS`). `decision`, `reviewer`, `reviewed_at` and `note` are left for the reviewer;
    `suggested` holds the label the data suggests (blank for a field value the data cannot suggest).
    Returns the number of rows. Raises OSError when the file cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for rank, s in enumerate(suspects, start=1):
            w.writerow([rank, s.split, s.check, s.id, s.where, s.field or "", s.input, _cell(s.given),
                        _cell(s.suggested), f"{s.score:.4f}", s.why, "", "", "", "", s.hash])
    return len(suspects)


@dataclass
class Decision:
    """One reviewed row: what to do to which item (and field), who decided when, and where it was written."""

    split: str
    id: str
    field: str | None
    action: str  # keep | relabel | drop | "" (not reviewed)
    value: Any  # the new label or field value (relabel)
    reviewer: str | None
    reviewed_at: str | None
    note: str | None
    line: int


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(first line, row) for every non-blank row; errors name the file, line and column."""
    if not path.is_file():
        raise InputError("review file not found", file=path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError("empty file: expected a header row (written by `advise audit --review`)",
                         file=path, line=1) from None
    except csv.Error as e:
        raise InputError(f"broken CSV: {e}", file=path, line=1) from None
    for name in REQUIRED:
        if name not in header:
            raise InputError(f"the header has no '{name}' column (write the file with `advise audit --review`)",
                             file=path, line=1, field=name)
    rows = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise InputError(f"broken CSV: {e}", file=path, line=start) from None
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"the row has {len(row)} fields, the header {len(header)} (an unquoted comma?)",
                             file=path, line=start)
        rows.append((start, dict(zip(header, row))))
    return rows


def read_review(task: Task, path: Path, records: dict[str, dict[str, Record]]) -> list[Decision]:
    """The decisions of a reviewed CSV, each checked against the data as it is now (`records`: split ->
    id -> record). Raises InputError naming the file, line and column for: a missing column, a row with
    the wrong number of fields, an unknown split or decision, an id not in the data, an item changed
    since the review was written (its `hash`), a relabel to a label outside `task.labels`, or a relabel
    of a field without a value."""
    out = []
    for line, row in _read_rows(path):
        def bad(message: str, column: str, line: int = line) -> InputError:
            return InputError(message, file=path, line=line, field=column)

        split = row["split"].strip()
        if split not in records:
            raise bad(f"'{split}' is not a split; expected train or eval", "split")
        item_id = row["id"].strip()
        rec = records[split].get(item_id)
        if rec is None:
            raise bad(f"no {split} item has id '{item_id}': the data changed since this review was written; "
                      "run `advise audit --review` again", "id")
        if record_hash(rec.input, rec.output) != row["hash"].strip():
            raise bad(f"{split} item '{item_id}' ({rec.where}) changed since this review was written (its input "
                      "or gold answer differ); run `advise audit --review` again", "hash")
        action = row["decision"].strip().lower()
        if action not in ("", *DECISIONS):
            raise bad(f"'{row['decision']}' is not a decision; expected keep, relabel or drop (blank: not "
                      "reviewed, kept)", "decision")
        key = row["field"].strip() or None
        value: Any = row["suggested"].strip()
        if key is not None and not isinstance(rec.output, dict):
            raise bad(f"{split} item '{item_id}' has no fields (its output is not an object)", "field")
        if action == "relabel":
            if key is None:
                if value not in (task.labels or []):
                    raise bad(f"'{value}' is not a label of the task; expected one of "
                              f"{', '.join(task.labels or [])}", "suggested")
            elif not value:
                raise bad("relabel needs the field's new value here (write null for no value)", "suggested")
            else:
                value = _parse_value(value, rec.output.get(key))
        out.append(Decision(split, item_id, key, action, value, row.get("reviewer", "").strip() or None,
                            row.get("reviewed_at", "").strip() or None, row.get("note", "").strip() or None, line))
    return out


def _parse_value(text: str, like: Any) -> Any:
    """A field value as the reviewer wrote it: `null` is no value; where the field's current value is a
    number, a list or an object, the text is read as JSON; otherwise it stays text (a ZIP code "02134"
    is not the number 2134)."""
    if text == "null":
        return None
    if like is not None and not isinstance(like, str):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _line(where: str) -> int:
    return int(where.rsplit(":", 1)[1])


def _apply_to_file(task: Task, src: Path, dst: Path, edits: dict[int, Any], drops: set[int]) -> None:
    """Copy the data file `src` to `dst` with `edits` (line -> new output) and `drops` (lines) applied.
    JSONL keeps every other line byte for byte; CSV is rewritten row by row."""
    text = read_text(src)
    if src.suffix.lower() == ".csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            if header is None:
                header = [h.strip() for h in row]
                w.writerow(row)
                continue
            if start in drops:
                continue
            if start in edits:
                row = list(row)
                new = edits[start]
                row[header.index("output")] = new if isinstance(new, str) else json.dumps(new, ensure_ascii=False)
            w.writerow(row)
        dst.write_text(buf.getvalue(), encoding="utf-8")
        return
    lines = text.splitlines(keepends=True)
    out = []
    for n, line in enumerate(lines, start=1):
        if n in drops:
            continue
        if n in edits:
            obj = json.loads(line)
            new = edits[n]
            # an extraction output written as JSON text stays JSON text
            obj["output"] = json.dumps(new, ensure_ascii=False) if isinstance(obj.get("output"), str) and \
                not isinstance(new, str) else new
            line = json.dumps(obj, ensure_ascii=False) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    dst.write_text("".join(out), encoding="utf-8")


def apply_review(task: Task, review: Path, out_dir: Path) -> dict[str, Any]:
    """Apply a reviewed CSV (`write_review`'s, edited) to a corrected copy of the task's train and eval in
    `out_dir`: `train<ext>` and `eval<ext>` (the originals' formats), and `changes.jsonl`, one line per
    change: split, id, where (the original file:line), action, field, before, after, reviewer,
    reviewed_at, note, review (the CSV's file:line), applied_at. Relabel sets the label (or the field's
    value); drop leaves the item out; keep and blank rows change nothing. A drop of an item wins over its
    relabels.

    Every row is checked before anything is written (`read_review`'s InputErrors, exit 2); `out_dir` may
    not hold the original files. Returns counts: {"relabel", "drop", "keep", "unreviewed", "files",
    "change_log"}. The original files are never modified.
    """
    records = {split: {r.id: r for r in load_records(task, split)[0]} for split in ("train", "eval")}
    decisions = read_review(task, review, records)
    sources = {split: task.data_path(split) for split in ("train", "eval")}
    targets = {split: out_dir / f"{split}{src.suffix}" for split, src in sources.items()}
    for split, dst in targets.items():
        for src in sources.values():
            if dst.resolve() == src.resolve():
                raise InputError(f"would overwrite the original {split} file {src}; choose another folder",
                                 file=f"--out {out_dir}")
    applied_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    edits: dict[str, dict[int, Any]] = {"train": {}, "eval": {}}
    drops: dict[str, set[int]] = {"train": set(), "eval": set()}
    changes: list[dict[str, Any]] = []
    tally = {"relabel": 0, "drop": 0, "keep": 0, "unreviewed": 0}
    dropped = {(d.split, d.id) for d in decisions if d.action == "drop"}
    for d in decisions:
        rec = records[d.split][d.id]
        line = _line(rec.where)
        if d.action in ("keep", ""):
            tally[d.action or "unreviewed"] += 1
        if d.action not in ("relabel", "drop") or (d.action == "relabel" and (d.split, d.id) in dropped):
            continue
        before: Any = rec.output
        if d.action == "drop":
            if line in drops[d.split]:
                continue  # two rows (two fields) dropping one item: one change
            drops[d.split].add(line)
            after = None
        else:
            current = edits[d.split].get(line, rec.output)
            if d.field is None:
                new = d.value
                before = current
            else:
                before = current.get(d.field)
                new = {**current, d.field: d.value}
            edits[d.split][line] = new
            after = d.value
        changes.append({"split": d.split, "id": d.id, "where": rec.where, "action": d.action, "field": d.field,
                        "before": before, "after": after, "reviewer": d.reviewer, "reviewed_at": d.reviewed_at,
                        "note": d.note, "review": f"{review}:{d.line}", "applied_at": applied_at})
    for c in changes:
        tally[c["action"]] += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, src in sources.items():
        _apply_to_file(task, src, targets[split], edits[split], drops[split])
    log = out_dir / CHANGE_LOG
    log.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in changes), encoding="utf-8")
    return {**tally, "files": {split: str(p) for split, p in targets.items()}, "change_log": str(log)}
