"""Examples from JSONL or CSV, with content hashes and errors that name file, line and field.

Also the guard that keeps eval examples out of training and few-shot prompts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.spec import Task
from advisor.types import Example


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys, no spaces)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """The key two inputs are 'the same' under: case and whitespace folded."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError("data file not found", file=path)
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict[str, Any]]] = []
    if suffix in {".jsonl", ".ndjson"}:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"broken JSON: {e.msg}", file=path, line=n) from None
                if not isinstance(obj, dict):
                    raise InputError("expected a JSON object per line", file=path, line=n)
                rows.append((n, obj))
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                # The header is line 1; a row's line is where the reader stopped after it.
                rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None}))
    else:
        raise InputError(f"unsupported data format '{suffix}': use .jsonl or .csv", file=path)
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
                value = json.loads(value)
            except json.JSONDecodeError:
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


def load_examples(task: Task, path: Path, *, split: str) -> list[Example]:
    """Load one split. Every record needs `input` and `output`; `id` defaults to split-line."""
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for line, rec in _records(path):
        for key in ("input", "output"):
            if key not in rec or rec[key] is None or rec[key] == "":
                raise InputError(f"missing '{key}'", file=path, line=line, field=key)
        if not isinstance(rec["input"], (str, int, float)):
            raise InputError("input must be text", file=path, line=line, field="input")
        output = _check_output(task, rec["output"], file=path, line=line)
        ex_id = str(rec.get("id") or f"{split}-{line}")
        if ex_id in seen:
            raise InputError(
                f"duplicate id '{ex_id}' (first on line {seen[ex_id]})", file=path, line=line, field="id"
            )
        seen[ex_id] = line
        fields = {**rec, "input": str(rec["input"]), "output": output, "id": ex_id}
        examples.append(
            Example(
                id=ex_id,
                input=str(rec["input"]),
                output=output,
                fields=fields,
                source=f"{path}:{line}",
                hash=stable_hash(fields)[:16],
            )
        )
    return examples


@dataclass
class Dataset:
    """The task's splits, loaded and checked. `train` never holds an eval input."""

    train: list[Example]
    eval: list[Example]
    leakage_removed: list[str]  # ids of train examples dropped because their input is in eval
    # ids dropped because they nearly copy an eval input (audit.near_duplicates: remove)
    near_leakage_removed: list[str] = field(default_factory=list)

    def hashes(self) -> dict[str, str]:
        return {
            "train": stable_hash([e.hash for e in self.train])[:16],
            "eval": stable_hash([e.hash for e in self.eval])[:16],
        }


def load_dataset(task: Task, *, limit: int | None = None) -> Dataset:
    """Load train and eval; drop train examples whose input also appears in eval (leakage).

    `limit` keeps the first N eval examples (a quick look; the report says so).
    """
    train = load_examples(task, task.path(task.data.train), split="train")
    eval_ = load_examples(task, task.path(task.data.eval), split="eval")
    if not eval_:
        raise InputError("the eval set is empty", file=task.path(task.data.eval))
    if limit is not None:
        eval_ = eval_[:limit]
    train, removed = remove_leakage(train, eval_)
    return Dataset(train=train, eval=eval_, leakage_removed=removed)


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
