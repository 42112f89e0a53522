"""Knowledge documents for RAG: a folder of .md/.txt files or a JSONL of records.

Every error names the file, the line (JSONL) and the field, so a user can fix
the input without reading a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.textio import jsonl_objects, read_text

TEXT_SUFFIXES = (".md", ".txt")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSONL_FIELDS = ("id", "text", "metadata")
# The index stores these next to a chunk; a document's own metadata must not shadow them.
RESERVED_METADATA = ("source_id", "start", "end")


@dataclass
class Document:
    """One knowledge document. `id` is stable across runs (a relative path or the JSONL id)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = field(default="", compare=False)  # "file:line", for messages; not part of the document


def load_knowledge(path: str | Path) -> list[Document]:
    """Load documents from a folder (recursive, sorted) or a JSONL file.

    >>> docs = load_knowledge("data/docs/")  # doctest: +SKIP
    >>> docs[0].id  # doctest: +SKIP
    'faq/returns.md'
    """
    path = Path(path)
    docs, refused = read_knowledge(path)
    if refused:
        raise refused[0]
    # An empty placeholder file has nothing to retrieve; skipping it keeps ids stable.
    docs = [d for d in docs if d.text.strip()]
    if not docs and path.is_dir():
        raise InputError(
            f"no knowledge found: the folder holds no non-empty {' or '.join(TEXT_SUFFIXES)} files", file=path
        )
    if not docs:
        raise InputError("no knowledge found: the file holds no records", file=path)
    return docs


def read_knowledge(path: Path) -> tuple[list[Document], list[InputError]]:
    """The documents at `path` as `load_knowledge` reads them, a folder's empty files included (it
    skips those), and an InputError for each JSONL record it refuses, in file order (the audit lists
    them all; a run stops at the first). A path that cannot be read as documents at all raises."""
    if path.is_dir():
        return [Document(p.relative_to(path).as_posix(), read_text(p), {}, f"{p}:1") for p in knowledge_files(path)], []
    if path.is_file():
        if path.suffix.lower() not in JSONL_SUFFIXES:
            raise InputError(
                f"unsupported knowledge format '{path.suffix}': use a folder of .md/.txt files "
                'or a .jsonl of {"id", "text", "metadata"} records',
                file=path,
            )
        return _read_jsonl(path)
    raise InputError("knowledge path not found", file=path)


def knowledge_files(root: Path) -> list[Path]:
    """The knowledge files of a folder, by relative path: .md and .txt, hidden ones (.git, editor
    swap files) left out. Each is read as UTF-8 (a byte-order mark dropped; another encoding: one
    clear error)."""
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _read_jsonl(path: Path) -> tuple[list[Document], list[InputError]]:
    docs: list[Document] = []
    refused: list[InputError] = []
    first_line: dict[str, int] = {}
    for n, obj in jsonl_objects(path):
        try:
            doc = _record(obj, path, n, first_line)
        except InputError as e:
            refused.append(e)
            continue
        first_line[doc.id] = n
        docs.append(doc)
    return docs, refused


def _record(obj: dict[str, Any], path: Path, n: int, first_line: dict[str, int]) -> Document:
    """One JSONL record checked; `first_line` (id -> line of the documents so far) catches a repeated id."""
    for key in obj:
        if key not in JSONL_FIELDS:
            raise InputError(
                f"unknown field; expected {', '.join(JSONL_FIELDS)}",
                file=path,
                line=n,
                field=str(key),
            )
    doc_id = obj.get("id")
    if doc_id is None:
        raise InputError("missing: every record needs an id", file=path, line=n, field="id")
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InputError(f"expected a non-empty string, got {doc_id!r}", file=path, line=n, field="id")
    text = obj.get("text")
    if text is None:
        raise InputError("missing: every record needs a text", file=path, line=n, field="text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(
            f"expected a non-empty string, got {_short(text)}", file=path, line=n, field="text"
        )
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InputError(
            f"expected an object, got {_short(metadata)}", file=path, line=n, field="metadata"
        )
    for key in metadata:
        if key in RESERVED_METADATA:
            raise InputError(
                f"reserved key (the index sets {', '.join(RESERVED_METADATA)}); rename it",
                file=path,
                line=n,
                field=f"metadata.{key}",
            )
    if doc_id in first_line:
        raise InputError(
            f"duplicate id '{doc_id}' (first on line {first_line[doc_id]})",
            file=path,
            line=n,
            field="id",
        )
    return Document(id=doc_id, text=text, metadata=dict(metadata), where=f"{path}:{n}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
