"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (`embedding: openai:<model>`).

The server is the one the task's `openai:` settings name (its first `openai:` model's entry, else
the `openai:` section, else $OPENAI_BASE_URL). Vectors are L2-normalized like the local embedder's,
and the identity (model and server, never the key) keys the index, so an unchanged knowledge base
is never re-embedded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from advisor.errors import BackendError
from advisor.modelspec import OpenAISettings, settings_for_embeddings

BATCH = 64  # texts per request
CLIENT_RETRIES = 2  # the openai client's default


class OpenAIEmbedder:
    """`encode(texts)` -> (len(texts), dimension) float32 unit vectors from the server."""

    def __init__(self, model: str, settings: OpenAISettings) -> None:
        from openai import OpenAI

        from advisor.backends.openai import api_key, base_url_of, public_url

        self.model_name = model
        base_url = base_url_of(settings)
        self.server = public_url(base_url)
        key = api_key(settings, f"embedding openai:{model}") or "no-key"
        # Indexing is a few batched requests, not a run's hundreds: the openai client's own retries
        # (2 unless max_retries is set) do here.
        retries = settings.max_retries if settings.max_retries is not None else CLIENT_RETRIES
        self.client = OpenAI(api_key=key, base_url=base_url, max_retries=retries, timeout=settings.timeout_s)
        self.identity = f"openai-{model}@{self.server}"
        self.encode_seconds = 0.0
        self.encoded_texts = 0
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension probe"]).shape[1])
        return self._dimension

    def encode(self, texts: Sequence[str], batch_size: int = BATCH) -> np.ndarray:
        """Unit vectors for `texts`, shape (len(texts), dimension). Each text's vector is kept in
        `<cache>/api_embeddings.sqlite` under (embedder identity, text): a server's vectors for the
        same text wobble in the last bits with its batching, which would reorder near-tied
        retrieval hits between runs (and recompute their answers); a text is also never paid twice.
        Raises BackendError when the server cannot be reached or answers an error."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        keys = [f"{self.identity}\n{t}" for t in texts]
        found = self._cached(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh = self._request([texts[i] for i in missing], batch_size)
            self._store({keys[i]: fresh[j] for j, i in enumerate(missing)})
            found.update({keys[i]: fresh[j] for j, i in enumerate(missing)})
        vectors = np.stack([found[k] for k in keys]).astype(np.float32)
        self._dimension = vectors.shape[1]
        return np.ascontiguousarray(vectors)

    def _request(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import openai

        start = time.perf_counter()
        rows: list[list[float]] = []
        for i in range(0, len(texts), batch_size):
            try:
                response = self.client.embeddings.create(model=self.model_name, input=list(texts[i : i + batch_size]))
            except (openai.APIConnectionError, openai.APITimeoutError):
                raise BackendError(f"cannot reach the embeddings server at {self.server}") from None
            except openai.APIStatusError as e:
                raise BackendError(f"the embeddings server at {self.server} answered {e.status_code} "
                                   f"for openai:{self.model_name}") from None
            rows.extend(d.embedding for d in sorted(response.data, key=lambda d: d.index))
        vectors = np.asarray(rows, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.encode_seconds += time.perf_counter() - start
        self.encoded_texts += len(texts)
        return vectors

    def _db(self) -> Any:
        import sqlite3

        from advisor.backends.hf import default_cache_dir

        path = default_cache_dir() / "api_embeddings.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        return db

    def _cached(self, keys: list[str]) -> dict[str, np.ndarray]:
        db = self._db()
        try:
            out: dict[str, np.ndarray] = {}
            for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                part = keys[start : start + 500]
                rows = db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                out.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
            return out
        finally:
            db.close()

    def _store(self, vectors: dict[str, np.ndarray]) -> None:
        db = self._db()
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                               [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()])
        finally:
            db.close()


def make_embedder(name: str, task: Any) -> Any:
    """`openai:<model>` -> an OpenAIEmbedder; anything else -> the local sentence-transformers Embedder."""
    if name.startswith("openai:"):
        return OpenAIEmbedder(name.split(":", 1)[1], settings_for_embeddings(task))
    from advisor.knowledge import Embedder

    return Embedder(name)
