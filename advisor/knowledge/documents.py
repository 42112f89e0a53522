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


def load_knowledge(path: str | Path) -> list[Document]:
    """Load documents from a folder (recursive, sorted) or a JSONL file.

    >>> docs = load_knowledge("data/docs/")  # doctest: +SKIP
    >>> docs[0].id  # doctest: +SKIP
    'faq/returns.md'
    """
    path = Path(path)
    if path.is_dir():
        docs = _load_folder(path)
        if not docs:
            raise InputError(
                f"no knowledge found: the folder holds no non-empty {' or '.join(TEXT_SUFFIXES)} files",
                file=path,
            )
        return docs
    if path.is_file():
        if path.suffix.lower() not in JSONL_SUFFIXES:
            raise InputError(
                f"unsupported knowledge format '{path.suffix}': use a folder of .md/.txt files "
                'or a .jsonl of {"id", "text", "metadata"} records',
                file=path,
            )
        docs = _load_jsonl(path)
        if not docs:
            raise InputError("no knowledge found: the file holds no records", file=path)
        return docs
    raise InputError("knowledge path not found", file=path)


def _load_folder(root: Path) -> list[Document]:
    docs = []
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in TEXT_SUFFIXES
        # Hidden files and folders (.git, editor swap files) are not knowledge.
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        text = read_text(p)  # UTF-8, a byte-order mark dropped; other encodings: one clear error
        # An empty placeholder file has nothing to retrieve; skipping it keeps ids stable.
        if not text.strip():
            continue
        docs.append(Document(id=p.relative_to(root).as_posix(), text=text, metadata={}))
    return docs


def _load_jsonl(path: Path) -> list[Document]:
    docs: list[Document] = []
    first_line: dict[str, int] = {}
    for n, obj in jsonl_objects(path):
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
        first_line[doc_id] = n
        docs.append(Document(id=doc_id, text=text, metadata=dict(metadata)))
    return docs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
