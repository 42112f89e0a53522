"""Split documents into chunks with exact character offsets.

A chunk ends at the best boundary that keeps it within `size` characters:
a paragraph end (paragraphs are separated by blank lines) if one fits, else a
sentence or line end, else a word end, else hard at `size`. The next chunk
starts `overlap` characters before the previous end (moved forward to a word
start when one is in reach), so context carries across the cut.
Whatever the split, `doc.text[chunk.start:chunk.end] == chunk.text`.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from advisor.knowledge.documents import Document

# One or more blank lines (whitespace-only lines count as blank).
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
# End of a sentence: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s)")
_LINE_END = re.compile(r"\S(?=[^\S\n]*\n)")
_WORD = re.compile(r"\S+")


class ChunkingConfig(BaseModel):
    """How documents are cut. Part of the index key: changing it builds a new index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(800, gt=0, description="Most characters in one chunk.")
    overlap: int = Field(
        100, ge=0, description="Characters of the previous chunk repeated at the next one's start."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise ValueError(
                f"`overlap` must be smaller than `size`, got overlap={self.overlap}, size={self.size}."
            )
        return self


@dataclass(frozen=True)
class Chunk:
    """A span of one document. `id` changes exactly when (source, offsets, text) change."""

    id: str
    source_id: str
    text: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def chunk_id(source_id: str, start: int, end: int, text: str) -> str:
    """Short stable hash of what makes a chunk; 64 bits is ample for one knowledge base."""
    blob = json.dumps([source_id, start, end, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def chunk_document(doc: Document, size: int = 800, overlap: int = 100) -> list[Chunk]:
    """Cut one document into chunks of at most `size` characters.

    >>> doc = Document("a.md", "First paragraph.\\n\\nSecond one.", {})
    >>> [c.text for c in chunk_document(doc, size=20, overlap=0)]
    ['First paragraph.', 'Second one.']
    """
    ChunkingConfig(size=size, overlap=overlap)  # validates; raises pydantic's ValueError
    text = doc.text
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if not words:
        return []
    word_starts = [s for s, _ in words]
    word_ends = [e for _, e in words]
    paragraph_ends = _paragraph_ends(text)
    sentence_ends = sorted(
        set(paragraph_ends)
        | {m.end() for m in _SENTENCE_END.finditer(text)}
        | {m.end() for m in _LINE_END.finditer(text)}
    )
    levels = (paragraph_ends, sentence_ends, word_ends)
    content_end = word_ends[-1]

    chunks: list[Chunk] = []
    start, prev_end = word_starts[0], word_starts[0]
    while True:
        limit = start + size
        end = _best_boundary(levels, prev_end, limit)
        if end is None:
            if not text[prev_end:limit].strip():
                # Only whitespace after the overlap: drop the overlap rather than add nothing new.
                start = prev_end = word_starts[bisect_left(word_starts, prev_end)]
                continue
            end = min(limit, content_end)  # no boundary fits: cut hard, inside a word
        piece = text[start:end]
        chunks.append(
            Chunk(
                id=chunk_id(doc.id, start, end, piece),
                source_id=doc.id,
                text=piece,
                start=start,
                end=end,
                metadata=dict(doc.metadata),
            )
        )
        if end >= content_end:
            return chunks
        start, prev_end = _next_start(text, word_starts, start, end, overlap), end


def chunk_documents(docs: Iterable[Document], config: ChunkingConfig | None = None) -> list[Chunk]:
    """Chunk every document with one config, in document order."""
    config = config or ChunkingConfig()
    return [c for d in docs for c in chunk_document(d, size=config.size, overlap=config.overlap)]


def _paragraph_ends(text: str) -> list[int]:
    ends = []
    for m in _PARAGRAPH_BREAK.finditer(text):
        p = m.start()
        while p > 0 and text[p - 1].isspace():
            p -= 1
        if p > 0:
            ends.append(p)
    ends.append(len(text.rstrip()))
    return sorted(set(ends))


def _best_boundary(levels: tuple[list[int], ...], low: int, high: int) -> int | None:
    """The largest boundary b with low < b <= high from the first level that has one."""
    for boundaries in levels:
        i = bisect_right(boundaries, high) - 1
        if i >= 0 and boundaries[i] > low:
            return boundaries[i]
    return None


def _next_start(text: str, word_starts: list[int], start: int, end: int, overlap: int) -> int:
    if overlap == 0:
        nxt = end
    else:
        # Never at or before this chunk's start, so the walk always moves on.
        target = max(end - overlap, start + 1)
        i = bisect_left(word_starts, target)
        # Begin the overlap on a whole word when one starts inside it; else cut mid-token.
        nxt = word_starts[i] if i < len(word_starts) and word_starts[i] < end else target
    while nxt < len(text) and text[nxt].isspace():
        nxt += 1
    return nxt
