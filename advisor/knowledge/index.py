"""A Chroma index of knowledge chunks that re-embeds only what changed.

Embedded (`chromadb.PersistentClient` on a folder) by default; a shared
`chroma run` server through `chroma_url`. We always pass our own vectors:
collections are made with `embedding_function=None`, so Chroma's default
ONNX model (a download) is never set, and a call without vectors fails
loudly instead of fetching anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from advisor.errors import BackendError
from advisor.knowledge.chunking import Chunk, ChunkingConfig, chunk_documents
from advisor.knowledge.documents import RESERVED_METADATA, Document
from advisor.knowledge.embeddings import Embedder

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

# Bump when what is stored per chunk changes, so old collections are not reused.
INDEX_FORMAT = 1
ADD_BATCH = 256  # chunks embedded and added per round; bounds memory and drives progress
QUERY_BATCH = 64
ID_PAGE = 5000  # ids listed per request; keeps one HTTP response small
SPACE = "cosine"

Progress = Callable[[int, int], None]
MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class SyncStats:
    """What one `sync` did. `embed_seconds` is model time only, for cost accounting."""

    added: int
    removed: int
    kept: int
    embedded_chunks: int
    embed_seconds: float
    total_chunks: int
    content_hash: str = ""


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk; `score` is cosine similarity (1 is identical)."""

    chunk_id: str
    source_id: str
    text: str
    start: int
    end: int
    score: float
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class KnowledgeIndex:
    """Chunks, embeds and stores documents in one Chroma collection; answers queries.

    The collection name is `name` plus a hash of the chunking config and the
    embedder, so a different model or chunk size never mixes vectors.

    >>> index = KnowledgeIndex(workdir / "chroma", name="catalogue")  # doctest: +SKIP
    >>> index.sync(load_knowledge("docs/")).embedded_chunks  # doctest: +SKIP
    412
    >>> index.query(["what does the blue kettle cost?"], k=3)[0][0].source_id  # doctest: +SKIP
    'kettles/blue.md'
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str = "knowledge",
        chroma_url: str | None = None,
        embedder: Embedder | None = None,
        chunking: ChunkingConfig | None = None,
    ) -> None:
        if path is None and chroma_url is None:
            raise ValueError("KnowledgeIndex needs a folder `path` or a `chroma_url`")
        self.embedder = embedder or Embedder()
        self.chunking = chunking or ChunkingConfig()
        self.chroma_url = chroma_url
        self.path = None if chroma_url else Path(path).expanduser()  # type: ignore[arg-type]
        self.collection_name = collection_name(name, self.chunking, self.embedder.identity)
        self._client = self._connect()
        with self._guard():
            self._collection: Collection = self._client.get_or_create_collection(
                self.collection_name,
                # None, not the default argument: the default would attach Chroma's ONNX model.
                embedding_function=None,
                configuration={"hnsw": {"space": SPACE}},
                metadata={
                    "advise_index": INDEX_FORMAT,
                    "embedder": self.embedder.identity,
                    "chunk_size": self.chunking.size,
                    "chunk_overlap": self.chunking.overlap,
                },
            )

    def _connect(self) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)  # no phoning home
        if self.chroma_url is None:
            assert self.path is not None
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=settings)
        url = urlsplit(self.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise BackendError(f"chroma_url must look like http://HOST:PORT, got {self.chroma_url}")
        ssl = url.scheme == "https"
        port = url.port or (443 if ssl else 8000)
        try:
            return chromadb.HttpClient(host=url.hostname, port=port, ssl=ssl, settings=settings)
        except Exception as e:  # the client raises ValueError, httpx errors, ...: all mean "no server"
            raise BackendError(
                f"cannot reach the Chroma server at {self.chroma_url} ({_first_line(e)}); "
                "start one with 'chroma run --host 127.0.0.1 --port 8000 --path DIR'"
            ) from None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a lost server connection into a one-line BackendError."""
        if self.chroma_url is None:
            yield
            return
        import httpx

        try:
            yield
        except (httpx.TransportError, ConnectionError) as e:
            raise BackendError(f"lost the Chroma server at {self.chroma_url}: {_first_line(e)}") from None

    def count(self) -> int:
        """How many chunks the collection holds."""
        with self._guard():
            return self._collection.count()

    def chunk_ids(self) -> set[str]:
        """Every chunk id in the collection."""
        ids: set[str] = set()
        with self._guard():
            offset = 0
            while True:
                page = self._collection.get(include=[], limit=ID_PAGE, offset=offset)["ids"]
                ids.update(page)
                if len(page) < ID_PAGE:
                    return ids
                offset += ID_PAGE

    def content_hash(self) -> str:
        """sha256 over the sorted chunk ids: names exactly what the index holds."""
        return _hash_ids(self.chunk_ids())

    def sync(self, documents: Sequence[Document], progress: Progress | None = None) -> SyncStats:
        """Make the collection hold exactly the chunks of `documents`, embedding only new ones.

        `progress(done, total)` is called with the count of chunks embedded so far.
        """
        seen: set[str] = set()
        for doc in documents:
            if doc.id in seen:
                raise ValueError(f"duplicate document id {doc.id!r}")
            seen.add(doc.id)
        wanted = {c.id: c for c in chunk_documents(documents, self.chunking)}
        existing = self.chunk_ids()
        stale = sorted(existing - wanted.keys())
        # Length-sorted, so each batch pads little: as fast as one encode over everything.
        new = sorted((c for cid, c in wanted.items() if cid not in existing), key=lambda c: len(c.text))

        with self._guard():
            for i in range(0, len(stale), ADD_BATCH):
                self._collection.delete(ids=stale[i : i + ADD_BATCH])
            embed_seconds = 0.0
            if progress:
                progress(0, len(new))
            for i in range(0, len(new), ADD_BATCH):
                batch = new[i : i + ADD_BATCH]
                before = self.embedder.encode_seconds
                vectors = self.embedder.encode([c.text for c in batch])
                embed_seconds += self.embedder.encode_seconds - before
                self._collection.add(
                    ids=[c.id for c in batch],
                    embeddings=vectors,
                    documents=[c.text for c in batch],
                    metadatas=[_chunk_metadata(c) for c in batch],  # type: ignore[misc]
                )
                if progress:
                    progress(i + len(batch), len(new))
        return SyncStats(
            added=len(new),
            removed=len(stale),
            kept=len(wanted) - len(new),
            embedded_chunks=len(new),
            embed_seconds=embed_seconds,
            total_chunks=len(wanted),
            content_hash=_hash_ids(wanted.keys()),
        )

    def query(self, texts: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """The `k` best chunks for each text, best first."""
        if not texts:
            return []
        return self.search(self.embedder.encode(list(texts)), k)

    def search(self, vectors: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """The `k` nearest chunks for each query vector (already embedded), best first."""
        if k < 1:
            raise ValueError(f"`k` must be at least 1, got {k}.")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            return []
        hits: list[list[Hit]] = []
        with self._guard():
            for i in range(0, len(vectors), QUERY_BATCH):
                result = self._collection.query(
                    query_embeddings=vectors[i : i + QUERY_BATCH],
                    n_results=k,  # Chroma 1.5 returns fewer when the collection is smaller
                    include=["documents", "metadatas", "distances"],  # type: ignore[list-item]
                )
                hits.extend(_hits(result))
        return hits

    def size_bytes(self) -> int | None:
        """Bytes on disk of the embedded index folder; None for a server."""
        if self.path is None:
            return None
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def drop(self) -> None:
        """Delete this index's collection (other collections in the same store stay)."""
        with self._guard():
            self._client.delete_collection(self.collection_name)


def collection_name(prefix: str, chunking: ChunkingConfig, embedder_identity: str) -> str:
    """`prefix` (made safe for Chroma) plus a hash of everything that shapes the vectors."""
    key = json.dumps(
        {
            "format": INDEX_FORMAT,
            "chunking": chunking.model_dump(),
            "embedder": embedder_identity,
            "space": SPACE,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    # Chroma allows [a-zA-Z0-9._-], starting and ending with a letter or digit.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-._")[:48].strip("-._")
    return f"{safe or 'knowledge'}-{digest}"


def flatten_metadata(meta: dict[str, Any], prefix: str = "") -> dict[str, MetadataValue]:
    """Nested dicts -> dotted keys; lists and other values -> JSON text; None dropped.

    >>> flatten_metadata({"a": {"b": 1}, "tags": ["x"], "n": None})
    {'a.b': 1, 'tags': '["x"]'}
    """
    out: dict[str, MetadataValue] = {}
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metadata(value, name + "."))
        elif value is None:
            continue  # Chroma rejects None values
        elif isinstance(value, bool | str | float) or (isinstance(value, int) and -(2**63) <= value < 2**63):
            out[name] = value
        else:
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
    return out


def _chunk_metadata(chunk: Chunk) -> dict[str, MetadataValue]:
    meta = flatten_metadata(chunk.metadata)
    meta.update(source_id=chunk.source_id, start=chunk.start, end=chunk.end)  # ours win
    return meta


def _hits(result: Any) -> list[list[Hit]]:
    out = []
    for ids, docs, metas, dists in zip(
        result["ids"], result["documents"], result["metadatas"], result["distances"], strict=True
    ):
        row = []
        for cid, text, meta, dist in zip(ids, docs, metas, dists, strict=True):
            meta = dict(meta or {})
            row.append(
                Hit(
                    chunk_id=cid,
                    source_id=str(meta.get("source_id", "")),
                    text=text or "",
                    start=int(meta.get("start", 0)),
                    end=int(meta.get("end", 0)),
                    score=1.0 - float(dist),
                    metadata={k: v for k, v in meta.items() if k not in RESERVED_METADATA},
                )
            )
        out.append(row)
    return out


def _hash_ids(ids: Any) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
