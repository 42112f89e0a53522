"""The audit's view of the data: every record with its file:line, read tolerantly.

The loaders in `advisor.data` and `advisor.knowledge` stop at the first bad record, which is right
for a run; an audit wants every problem at once, so it reads the same files without refusing any
record it can parse (broken JSON is still an input error: there is no record to audit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.data import _records, normalize_text
from advisor.errors import InputError
from advisor.knowledge.documents import JSONL_SUFFIXES, TEXT_SUFFIXES
from advisor.spec import Task
from advisor.textio import jsonl_objects, read_text


@dataclass
class Record:
    """One train or eval line. `output` is parsed the way the loader parses it (JSON text for
    extraction becomes an object); `key` is the leakage guard's normalised input."""

    split: str  # "train" | "eval"
    id: str
    where: str  # "file:line"
    input: str | None
    output: Any
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return normalize_text(self.input or "")


@dataclass
class KnowledgeDoc:
    """One knowledge document with where it lives (a JSONL line, or a file of a folder)."""

    id: str
    where: str
    text: str


def _parse_output(task: Task, value: Any) -> Any:
    if task.kind == "extraction" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # left as text; the form check reports it
    if task.kind == "classification" and isinstance(value, str):
        return value.strip()
    return value


def load_records(task: Task, path: Path, split: str) -> list[Record]:
    """Every record of one split; raises InputError only for a missing file or unparseable line."""
    out = []
    for line, rec in _records(path):
        raw_input = rec.get("input")
        text = None if raw_input is None or isinstance(raw_input, (dict, list)) else str(raw_input)
        out.append(Record(split=split, id=str(rec.get("id") or f"{split}-{line}"), where=f"{path}:{line}",
                          input=text, output=_parse_output(task, rec.get("output")), fields=rec))
    return out


def load_documents(path: Path) -> list[KnowledgeDoc]:
    """Every knowledge document, empty ones included (the RAG loader skips or refuses those)."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                 and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        docs = []
        for p in sorted(files, key=lambda p: p.relative_to(path).as_posix()):
            text = read_text(p)  # the one way every input is read: UTF-8, with or without a BOM
            docs.append(KnowledgeDoc(p.relative_to(path).as_posix(), f"{p}:1", text))
        return docs
    if not path.is_file():
        raise InputError("knowledge path not found", file=path, field="data.knowledge")
    if path.suffix.lower() not in JSONL_SUFFIXES:
        raise InputError(f"unsupported knowledge format '{path.suffix}'", file=path, field="data.knowledge")
    docs = []
    for n, obj in jsonl_objects(path):
        text = obj.get("text")
        docs.append(KnowledgeDoc(str(obj.get("id") or f"line-{n}"), f"{path}:{n}",
                                 text if isinstance(text, str) else ""))
    return docs
