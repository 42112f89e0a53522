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
from advisor.textio import csv_rows, read_text

COLUMNS = ["rank", "split", "check", "id", "where", "field", "input", "given", "suggested", "score", "why",
           "decision", "reviewer", "reviewed_at", "note", "hash"]
REQUIRED = ["split", "id", "field", "suggested", "decision", "hash"]
DECISIONS = ("keep", "relabel", "drop")
CHANGE_LOG = "changes.jsonl"


def task_files(task: Task) -> dict[Path, str]:
    """Every file the task reads, resolved (symlinks, `..`) -> what it is: task.yaml, the train and eval
    data, the knowledge file (or each file under a knowledge folder), each json_schema check's schema file,
    and labels.jsonl. Settings that name nothing that exists are left out (validate reports those)."""
    from advisor.checks import JsonSchemaCheck
    from advisor.judge.labels import LABELS_FILE

    found: dict[Path, str] = {}

    def add(path: Path, what: str) -> None:
        try:
            found.setdefault(path.resolve(), what)
        except OSError:
            pass

    origin = getattr(task, "_origin", None)
    if origin is not None:
        add(Path(origin.file), "task.yaml")
    for key in ("train", "eval", "knowledge"):
        value = getattr(task.data, key, None)
        if value is None:
            continue
        path = task.path(Path(value))
        if path.is_dir():
            for sub in path.rglob("*"):
                if sub.is_file():
                    add(sub, f"a knowledge file (data.{key})")
        else:
            add(path, f"the {key} data (data.{key})" if key != "knowledge" else "the knowledge file (data.knowledge)")
    for i, check in enumerate(task.checks):
        if isinstance(check, JsonSchemaCheck) and isinstance(check.schema_, str):
            add(task.path(Path(check.schema_)), f"the schema file of checks[{i}]")
    add(task.base_dir / LABELS_FILE, f"the task's {LABELS_FILE}")
    return found


def refuse_task_file(task: Task, path: Path, option: str, skip: tuple[str, ...] = ()) -> None:
    """InputError (exit 2), one line naming `option` and `path`, when writing `path` would overwrite a
    file the task reads (`task_files`; symlinks and `..` resolved). `skip`: kinds of file that are the
    write's own target (`advise label` appends to labels.jsonl)."""
    try:
        target = path.resolve()
    except OSError:
        return
    what = task_files(task).get(target)
    if what is not None and not any(what.endswith(s) for s in skip):
        raise InputError(f"is {what} of the task ({target}): writing it would overwrite the original; "
                         "choose another path", file=f"{option} {path}".strip())


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
    if path.is_dir():
        raise InputError("is a folder, not a review file; give the CSV `advise audit --review` wrote", file=path)
    if not path.is_file():
        raise InputError("review file not found", file=path)
    text = read_text(path)
    first = text.split("\n", 1)[0]
    try:  # a spreadsheet saved with ';' (or tab) separators is read as such
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter if first.strip() else ","
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError("empty file: expected a header row (written by `advise audit --review`)",
                         file=path, line=1) from None
    except csv.Error as e:
        raise InputError(f"broken CSV: {e}", file=path, line=1) from None
    for name in REQUIRED:
        if name not in header:
            if ";" in first and delimiter != ";":
                raise InputError(f"the header has no '{name}' column; the file looks semicolon-separated: save "
                                 "it comma-separated", file=path, line=1, field=name)
            raise InputError(f"the header has no '{name}' column (write the file with `advise audit --review`)",
                             file=path, line=1, field=name)
    rows = []
    for start, row in csv_rows(reader, path):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"the row has {len(row)} fields, the header {len(header)} (an unquoted comma?)",
                             file=path, line=start)
        rows.append((start, dict(zip(header, row))))
    return rows


def read_review(task: Task, path: Path, records: dict[str, dict[str, Record]]) -> list[Decision]:
    """The decisions of a reviewed CSV, each checked against the data as it is now (`records`: split ->
    id -> record). The file may be comma-, semicolon- or tab-separated (a spreadsheet's save). Raises
    InputError naming the file, line and column for: a folder given, a missing column, a row with the wrong
    number of fields, an unknown split or decision, an id not in the data, two rows for one item (and
    field; naming both lines), an item changed
    since the review was written (its `hash`), a relabel to a label outside `task.labels`, or a relabel
    of a field without a value."""
    out = []
    seen: dict[tuple[str, str, str | None], int] = {}
    for line, row in _read_rows(path):
        def bad(message: str, column: str, line: int = line) -> InputError:
            return InputError(message, file=path, line=line, field=column)

        split = row["split"].strip()
        if split not in records:
            raise bad(f"'{split}' is not a split; expected train or eval", "split")
        item_id = row["id"].strip()
        rec = records[split].get(item_id)
        if rec is None:
            raise bad(f"id '{item_id}' is not in the {split} data (a mistyped id? an item since removed?)", "id")
        if record_hash(rec.input, rec.output) != row["hash"].strip():
            raise bad(f"{split} item '{item_id}' ({rec.where}) changed since this review was written (its input "
                      "or gold answer differ); run `advise audit --review` again", "hash")
        key = row["field"].strip() or None
        first_line = seen.setdefault((split, item_id, key), line)
        if first_line != line:
            raise bad(f"{split} item '{item_id}'" + (f" field '{key}'" if key else "") + " is reviewed twice: at "
                      f"line {first_line} and line {line}; keep one row", "id")
        action = row["decision"].strip().lower()
        if action not in ("", *DECISIONS):
            raise bad(f"'{row['decision']}' is not a decision; expected keep, relabel or drop (blank: not "
                      "reviewed, kept)", "decision")
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
        for start, row in csv_rows(reader, src):
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


def _validate_copy(task: Task, targets: dict[str, Path]) -> None:
    """Load the corrected copy as `advise validate` loads data (`advisor.data.load_dataset`); InputError,
    one line naming the copy's file and line, when it would be refused."""
    from advisor.data import load_dataset

    copy = task.model_copy(update={"data": task.data.model_copy(
        update={"train": targets["train"].resolve(), "eval": targets["eval"].resolve()})})
    try:
        load_dataset(copy)
    except InputError as e:
        raise InputError(f"the corrected copy is written but `advise validate` would refuse it: {e}; fix the "
                         "review (or the data) and apply it again") from None


def apply_review(task: Task, review: Path, out_dir: Path) -> dict[str, Any]:
    """Apply a reviewed CSV (`write_review`'s, edited) to a corrected copy of the task's train and eval in
    `out_dir`: `train<ext>` and `eval<ext>` (the originals' formats), and `changes.jsonl`, one line per
    change: split, id, where (the original file:line), action, field, before, after, reviewer,
    reviewed_at, note, review (the CSV's file:line), applied_at. Relabel sets the label (or the field's
    value); drop leaves the item out; keep and blank rows change nothing. A drop of an item wins over its
    relabels. A relabel to the label (or value) the item already has changes nothing: it is
    counted as keep and not logged.

    Every row is checked before anything is written (`read_review`'s InputErrors, exit 2); `out_dir` may
    not hold any file the task reads (`refuse_task_file`). After writing, the copy is loaded as `advise
    validate` loads data; InputError (one line, naming the copy's file and line) when it would be refused. Returns counts: {"relabel", "drop", "keep", "unreviewed", "files",
    "change_log"}. The original files are never modified.
    """
    records = {split: {r.id: r for r in load_records(task, split)[0]} for split in ("train", "eval")}
    decisions = read_review(task, review, records)
    sources = {split: task.data_path(split) for split in ("train", "eval")}
    targets = {split: out_dir / f"{split}{src.suffix}" for split, src in sources.items()}
    for dst in (*targets.values(), out_dir / CHANGE_LOG):
        refuse_task_file(task, dst, "--out")
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
        if d.action == "relabel":
            current = edits[d.split].get(line, rec.output)
            if (current if d.field is None else current.get(d.field)) == d.value:
                tally["keep"] += 1  # the suggested label is the given one: nothing changes, nothing is logged
                continue
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
    _validate_copy(task, targets)
    return {**tally, "files": {split: str(p) for split, p in targets.items()}, "change_log": str(log)}
