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
EXACT_SEARCH_MAX = 50_000  # chunks; up to this many, queries are answered by exact search
EXTRA_CANDIDATES = 10  # candidates beyond k fetched from HNSW and re-ranked exactly
SCORE_DECIMALS = 5  # scores closer than this are ties, broken by chunk id
MIN_TIMED_CHUNKS = 32  # fewer embedded chunks are too few to time the embedding rate on
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
        self._synced = 0  # bumped by every sync: the exact-search copy of the vectors is stale
        self._all: tuple[Any, Any] | None = None
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

    # -- what building the index cost, kept with the index (collection metadata) ------------------

    def build_cost(self) -> dict[str, Any] | None:
        """The embedding cost recorded when the index was built, or None before any record.

        {"seconds_per_chunk": float, "chunks": int (how many were timed), "measured": ISO date}.
        A rerun that embeds nothing reports this, not the time it took to load the index.
        """
        with self._guard():
            meta = self._collection.metadata or {}
        rate = meta.get("advise_seconds_per_chunk")
        if not isinstance(rate, int | float):
            return None
        return {"seconds_per_chunk": float(rate), "chunks": int(meta.get("advise_cost_chunks", 0)),
                "measured": str(meta.get("advise_cost_measured", ""))}

    def record_build_cost(self, seconds_per_chunk: float, chunks: int) -> None:
        """Keep the embedding rate measured on `chunks` chunks with the collection.

        A later, larger measurement replaces a smaller one; a smaller one never replaces it.
        """
        from datetime import datetime, timezone

        previous = self.build_cost()
        if previous is not None and previous["chunks"] > chunks:
            return
        with self._guard():
            meta = dict(self._collection.metadata or {})
            meta.update(advise_seconds_per_chunk=float(seconds_per_chunk), advise_cost_chunks=int(chunks),
                        advise_cost_measured=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            self._collection.modify(metadata=meta)

    def sync(self, documents: Sequence[Document], progress: Progress | None = None) -> SyncStats:
        """Make the collection hold exactly the chunks of `documents`, embedding only new ones.

        `progress(done, total)` is called with the count of chunks embedded so far.
        """
        seen: set[str] = set()
        for doc in documents:
            if doc.id in seen:
                raise ValueError(f"duplicate document id {doc.id!r}")
            seen.add(doc.id)
        self._synced += 1
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
        if len(new) >= MIN_TIMED_CHUNKS and embed_seconds > 0:
            self.record_build_cost(embed_seconds / len(new), len(new))
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
        # HNSW is approximate, and its graph as built differs from the graph Chroma reloads (the
        # adds it had not folded in yet are replayed in other batches): the TREC rag lever got a
        # different third hit for one of 300 questions in the first run than in later ones, so
        # the second run missed the prediction cache. Up to EXACT_SEARCH_MAX chunks the search is
        # exact (a matrix product over the stored vectors, which numpy does in milliseconds);
        # beyond, HNSW's candidates are re-scored exactly. Ties break by chunk id either way.
        if self.count() <= EXACT_SEARCH_MAX:
            return self._exact_search(vectors, k)
        wanted = k + max(k, EXTRA_CANDIDATES)
        with self._guard():
            for i in range(0, len(vectors), QUERY_BATCH):
                block = vectors[i : i + QUERY_BATCH]
                result = self._collection.query(
                    query_embeddings=block,
                    n_results=wanted,  # Chroma 1.5 returns fewer when the collection is smaller
                    include=["documents", "metadatas", "embeddings"],  # type: ignore[list-item]
                )
                hits.extend(_exact_top_k(result["ids"], result["documents"], result["metadatas"],
                                         [np.asarray(e, dtype=np.float32) for e in result["embeddings"]],
                                         block, k))
        return hits

    def _stored(self) -> tuple[list[str], np.ndarray, list[Any], list[Any]]:
        """Every chunk's id, vector, text and metadata, read once per index state."""
        state = (self.count(), self._synced)
        if self._all is None or self._all[0] != state:
            ids: list[str] = []
            vecs: list[Any] = []
            docs: list[Any] = []
            metas: list[Any] = []
            with self._guard():
                offset = 0
                while True:
                    page = self._collection.get(include=["embeddings", "documents", "metadatas"],  # type: ignore[list-item]
                                                limit=ID_PAGE, offset=offset)
                    ids += page["ids"]
                    vecs += list(page["embeddings"]) if len(page["ids"]) else []
                    docs += page["documents"] or []
                    metas += page["metadatas"] or []
                    if len(page["ids"]) < ID_PAGE:
                        break
                    offset += ID_PAGE
            matrix = np.asarray(vecs, dtype=np.float32).reshape(len(ids), -1) if ids else np.zeros((0, 0), np.float32)
            self._all = (state, (ids, matrix, docs, metas))
        return self._all[1]

    def _exact_search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        ids, matrix, docs, metas = self._stored()
        if not ids:
            return [[] for _ in vectors]
        return _exact_top_k([ids] * len(vectors), [docs] * len(vectors), [metas] * len(vectors),
                            [matrix] * len(vectors), vectors, k)

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


def _exact_top_k(ids: list[list[str]], docs: list[Any], metas: list[Any], embs: list[np.ndarray],
                 queries: np.ndarray, k: int) -> list[list[Hit]]:
    """Per query, the `k` best of its candidates (ids, texts, metadatas, vectors) by exact cosine.

    Scores are rounded to SCORE_DECIMALS before ranking and ties break by chunk id, so float
    noise cannot swap two chunks that are equally close; `Hit.score` keeps the unrounded value.
    """
    out = []
    for q, row_ids, row_docs, row_metas, matrix in zip(queries, ids, docs, metas, embs, strict=True):
        if len(row_ids) == 0:
            out.append([])
            continue
        norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(q)), 1e-12)
        scores = (matrix @ q) / np.maximum(norms, 1e-12)
        # lexsort: the last key is the primary one (rounded score, best first), then the id.
        order = np.lexsort((np.asarray(row_ids), -np.round(scores, SCORE_DECIMALS)))[:k]
        out.append(_hits({"ids": [[row_ids[j] for j in order]], "documents": [[row_docs[j] for j in order]],
                          "metadatas": [[row_metas[j] for j in order]],
                          "distances": [[1.0 - float(scores[j]) for j in order]]})[0])
    return out


def _hash_ids(ids: Any) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
