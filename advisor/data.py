"""Examples from JSONL or CSV, with content hashes and errors that name file, line and field.

Also the guard that keeps eval examples out of training and few-shot prompts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.spec import Task
from advisor.textio import JSONError, csv_rows, jsonl_objects, loads, read_text
from advisor.textnorm import canonical_text, normalize_answer
from advisor.types import Example


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys, no spaces)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """The key two inputs are 'the same' under: `advisor.textnorm.canonical_text` (Unicode NFKC,
    format characters dropped, quotes and dashes unified, case folded, whitespace collapsed)."""
    return canonical_text(text)


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, record) for every non-blank line (JSONL) or row (CSV) of a data file.

    Both read through `read_text`: UTF-8 with or without a byte-order mark. A CSV row with
    more or fewer fields than the header is an error naming its line: a reader never drops or
    invents a value.
    """
    if not path.is_file():
        raise InputError("data file not found", file=path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return jsonl_objects(path)
    if suffix == ".csv":
        return _csv_records(path)
    raise InputError(f"unsupported data format '{suffix}': use .jsonl or .csv", file=path)


def _csv_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    # csv.reader, not DictReader: DictReader files surplus fields under a None key and fills
    # missing ones with None, which is how a stray comma used to cut a gold answer short unseen.
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as e:
        raise InputError(f"broken CSV: {e}", file=path, line=reader.line_num) from None
    header = [h.strip() for h in header]
    for i, name in enumerate(header):
        if not name:
            raise InputError(f"column {i + 1} of the header has no name", file=path, line=1)
        if header.index(name) != i:
            raise InputError(f"the header names column '{name}' twice", file=path, line=1, field=name)
    rows: list[tuple[int, dict[str, Any]]] = []
    for start, row in csv_rows(reader, path):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != len(header):
            more = "more" if len(row) > len(header) else "fewer"
            hint = " (an unquoted comma in a value? quote the value)" if more == "more" else ""
            raise InputError(
                f"the row has {len(row)} fields, {more} than the header's {len(header)} "
                f"({', '.join(header)}){hint}",
                file=path, line=start,
            )
        rows.append((start, dict(zip(header, row))))
    return rows


def _check_output(task: Task, value: Any, *, file: Path, line: int) -> Any:
    if task.kind == "classification":
        label = str(value).strip()
        if label not in (task.labels or []):
            raise InputError(
                f"unknown label '{label}'; expected one of {', '.join(task.labels or [])}",
                file=file,
                line=line,
                field="output",
            )
        return label
    if task.kind == "extraction":
        if isinstance(value, str):
            try:
                value = loads(value)
            except JSONError:
                raise InputError(
                    "extraction output must be a JSON object", file=file, line=line, field="output"
                ) from None
        if not isinstance(value, dict):
            raise InputError(
                "extraction output must be a JSON object", file=file, line=line, field="output"
            )
        return value
    if not isinstance(value, (str, int, float)):
        raise InputError("output must be text", file=file, line=line, field="output")
    return str(value)


def _blank(value: Any) -> bool:
    """Missing: absent, JSON null, or text with nothing but whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def _check_id(value: Any, *, file: Path, line: int) -> str | None:
    if value is None:
        return None
    # bool is an int to Python, but `true` is no one's id; a float id would print as "1.0".
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"expected text or an integer, got {_short(value)}", file=file, line=line, field="id")
    text = str(value).strip()
    if not text:
        raise InputError("missing: an id that is given must not be blank", file=file, line=line, field="id")
    return text


def _check_sources(value: Any, *, file: Path, line: int) -> list[str] | None:
    """Gold document ids: one id as text or a list of ids; always a list once read."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]  # one source: never iterated character by character
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise InputError(f"expected a document id or a list of document ids, got {_short(value)}",
                         file=file, line=line, field="sources")
    ids = [str(v).strip() for v in value]
    if any(not v for v in ids):
        raise InputError("a blank document id", file=file, line=line, field="sources")
    return ids


def _why_output(task: Task) -> str:
    """Why an eval item needs `output` here: the target is a gold metric."""
    if not task.checks:
        return (f" (target.metric {task.target.metric} compares answers with it; an eval item may go without "
                "one only when the task declares `checks:` and target.metric is one of them or pass_all)")
    crits = f" or a rubric criterion: {', '.join(task.criterion_metrics)}" if task.criterion_metrics else ""
    return (f" (target.metric {task.target.metric} compares answers with it; an eval item may go without one "
            f"only when target.metric is a check: {', '.join(task.check_metrics)}{crits})")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def load_examples(task: Task, path: Path, *, split: str) -> list[Example]:
    """Load one split. Every record needs `input` and `output` (an eval record may leave `output` out,
    or null, when the target is a check: `Task.eval_needs_gold`; its `Example.output` is then None);
    `id` defaults to split-line.

    Fields of a known type are checked where they are read: `input` is text (a blank one is
    missing), `output` fits the task's kind, `id` is text or an integer, unique in the file,
    `sources` is one document id or a list of them (kept as a list). Raises InputError naming
    the file, line and field (the first refused record's; `read_examples` gives every one).
    """
    examples, refused = read_examples(task, path, split=split)
    if refused:
        raise refused[0]
    return examples


def read_examples(task: Task, path: Path, *, split: str) -> tuple[list[Example], list[InputError]]:
    """The examples of one split that pass `load_examples`' checks, and an InputError for each
    record that does not, in file order (the audit lists them all; a run stops at the first).
    A file that cannot be read as records at all (missing, broken JSON or CSV) still raises."""
    examples: list[Example] = []
    refused: list[InputError] = []
    seen: dict[str, int] = {}
    for line, rec in _records(path):
        try:
            examples.append(_example(task, rec, path=path, line=line, split=split, seen=seen))
        except InputError as e:
            refused.append(e)
    return examples, refused


def _example(task: Task, rec: dict[str, Any], *, path: Path, line: int, split: str, seen: dict[str, int]) -> Example:
    """One record checked and read; `seen` (id -> line of the examples so far) catches a repeated id."""
    # An eval item may go without a gold output when no metric the target needs is gold-based.
    no_gold = split == "eval" and rec.get("output") is None and not task.eval_needs_gold
    for key in ("input",) if no_gold else ("input", "output"):
        if key not in rec or _blank(rec[key]):
            what = "blank (only whitespace)" if isinstance(rec.get(key), str) and rec[key] else "missing"
            why = _why_output(task) if key == "output" and split == "eval" and rec.get(key) is None else ""
            raise InputError(f"{what}: every example needs '{key}'{why}", file=path, line=line, field=key)
    if not isinstance(rec["input"], (str, int, float)) or isinstance(rec["input"], bool):
        raise InputError("input must be text", file=path, line=line, field="input")
    output = None if no_gold else _check_output(task, rec["output"], file=path, line=line)
    if output is not None and task.kind in {"qa", "generation"} and not normalize_answer(output):
        raise InputError(
            f"the gold answer {_short(output)} is empty once normalised (case folded; punctuation "
            "around words and articles dropped), so exact match would count an empty answer right; write the answer in words",
            file=path, line=line, field="output",
        )
    ex_id = _check_id(rec.get("id"), file=path, line=line) or f"{split}-{line}"
    if ex_id in seen:
        raise InputError(
            f"duplicate id '{ex_id}' (first on line {seen[ex_id]})", file=path, line=line, field="id"
        )
    fields = {**rec, "input": str(rec["input"]), "output": output, "id": ex_id}
    if "sources" in rec:
        fields["sources"] = _check_sources(rec["sources"], file=path, line=line)
    seen[ex_id] = line
    return Example(
        id=ex_id,
        input=str(rec["input"]),
        output=output,
        fields=fields,
        source=f"{path}:{line}",
        hash=stable_hash(fields)[:16],
    )


@dataclass
class Dataset:
    """The task's splits, loaded and checked. `train` never holds an eval input."""

    train: list[Example]
    eval: list[Example]
    leakage_removed: list[str]  # ids of train examples dropped because their input is in eval
    # ids dropped because they nearly copy an eval input (audit.near_duplicates: remove)
    near_leakage_removed: list[str] = field(default_factory=list)
    # (id, "train file:line", "eval file:line") for each id both splits use: usually an eval item copied
    # into train, reported even when its input was edited (the leakage guard compares inputs only)
    shared_ids: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def eval_gold(self) -> int:
        """Eval items with a gold output (all of them, unless the target is a check)."""
        return sum(1 for e in self.eval if e.output is not None)

    def hashes(self) -> dict[str, str]:
        return {
            "train": stable_hash([e.hash for e in self.train])[:16],
            "eval": stable_hash([e.hash for e in self.eval])[:16],
        }


def load_dataset(task: Task, *, limit: int | None = None) -> Dataset:
    """Load train and eval; drop train examples whose input also appears in eval (leakage), and note ids
    both use (`Dataset.shared_ids`: reported, not refused).

    `limit` keeps the first N eval examples (a quick look; the report says so). Raises InputError
    naming the file, line and field of the first bad record.
    """
    train = load_examples(task, task.data_path("train"), split="train")
    eval_ = load_examples(task, task.data_path("eval"), split="eval")
    if not eval_:
        raise InputError("the eval set is empty", file=task.data_path("eval"))
    shared = shared_ids(train, eval_)
    if limit is not None:
        eval_ = eval_[:limit]
    train, removed = remove_leakage(train, eval_)
    return Dataset(train=train, eval=eval_, leakage_removed=removed, shared_ids=shared)


def shared_ids(train: list[Example], eval_: list[Example]) -> list[tuple[str, str, str]]:
    """(id, train source, eval source) for every id that names an example in both splits, in eval order
    (sources are "file:line"). Ids are unique within a file (the loader refuses a repeat); across train
    and eval the same id is allowed but is usually a copy, so it is reported, never refused."""
    in_train = {e.id: e.source for e in train}
    return [(e.id, in_train[e.id], e.source) for e in eval_ if e.id in in_train]


def remove_leakage(train: list[Example], eval_: list[Example]) -> tuple[list[Example], list[str]]:
    """Train examples minus those whose normalized input is also in eval."""
    eval_inputs = {normalize_text(e.input) for e in eval_}
    kept, removed = [], []
    for e in train:
        if normalize_text(e.input) in eval_inputs:
            removed.append(e.id)
        else:
            kept.append(e)
    return kept, removed


def assert_no_eval(pool: list[Example], eval_: list[Example], *, what: str) -> None:
    """Refuse to use `pool` (few-shot examples, training data) if it holds any eval example."""
    eval_inputs = {normalize_text(e.input) for e in eval_}
    leaked = [e.id for e in pool if normalize_text(e.input) in eval_inputs]
    if leaked:
        raise InputError(
            f"{what} would include {len(leaked)} eval example(s) (e.g. {leaked[0]}); "
            "eval examples are never shown to the model"
        )
