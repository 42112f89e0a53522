"""The audit's view of the data: every record with its file:line, read by the run's own loaders.

The loaders in `advisor.data` and `advisor.knowledge` stop at the first bad record, which is right
for a run; an audit wants every problem at once, so it asks them for every record they accept and
every one they refuse (`read_examples`, `read_knowledge`), with the very messages `advise validate`
gives. A file that cannot be read as records at all (missing, broken JSON) is still an input error:
there is no record to audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advisor.data import read_examples
from advisor.errors import InputError
from advisor.knowledge.documents import read_knowledge
from advisor.spec import Task
from advisor.textnorm import canonical_text


@dataclass
class Record:
    """One train or eval example the loader accepts. `output` is parsed as the loader parses it
    (JSON text for extraction becomes an object); `key` is the leakage guard's normalised input."""

    split: str  # "train" | "eval"
    id: str
    where: str  # "file:line"
    input: str
    output: Any
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return canonical_text(self.input)


@dataclass
class KnowledgeDoc:
    """One knowledge document with where it lives (a JSONL line, or a file of a folder)."""

    id: str
    where: str
    text: str


def load_records(task: Task, split: str) -> tuple[list[Record], list[InputError]]:
    """The records of `data.<split>` the loader accepts, and its error for each one it refuses."""
    examples, refused = read_examples(task, task.data_path(split), split=split)  # type: ignore[arg-type]
    return [Record(split, ex.id, ex.source, ex.input, ex.output, ex.fields) for ex in examples], refused


def load_documents(task: Task) -> tuple[list[KnowledgeDoc], list[InputError]]:
    """The task's knowledge documents, a folder's empty files included (the RAG loader skips them),
    and the loader's error for each record it refuses."""
    if not task.data.knowledge:
        return [], []
    docs, refused = read_knowledge(task.data_path("knowledge"))
    return [KnowledgeDoc(d.id, d.where, d.text) for d in docs], refused
