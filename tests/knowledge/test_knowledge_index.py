"""KnowledgeIndex on a real Chroma: embedded and through a `chroma run` server."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from advisor.errors import BackendError
from advisor.knowledge import embeddings as embeddings_module
from advisor.knowledge.chunking import ChunkingConfig, chunk_document, chunk_documents
from advisor.knowledge.embeddings import Embedder
from advisor.knowledge.index import KnowledgeIndex, collection_name, flatten_metadata

CFG = ChunkingConfig(size=200, overlap=40)  # small chunks: several per document

# An obvious question per document, and the document that answers it.
QUESTIONS = [
    ("How long should I knead the dough for a loaf?", "baking/bread.md"),
    ("Which chess piece moves in an L shape?", "chess.txt"),
    ("What is lava and how do stratovolcanoes erupt?", "volcanoes.md"),
    ("Can a business reclaim VAT paid on purchases?", "tax/vat.md"),
    ("How do I sort a Python list in place?", "python.md"),
]


def _check_sync_and_query(index: KnowledgeIndex, corpus) -> None:
    """The flow both modes must pass: build, query, resync, change one, remove one."""
    assert index.query(["anything"], k=3) == [[]]  # empty collection: no hits, no error
    expected = chunk_documents(corpus, CFG)
    calls: list[tuple[int, int]] = []
    stats = index.sync(corpus, progress=lambda done, total: calls.append((done, total)))
    assert stats.total_chunks == stats.added == stats.embedded_chunks == len(expected)
    assert (stats.removed, stats.kept) == (0, 0)
    assert stats.embed_seconds > 0
    assert index.count() == len(expected) > len(corpus)
    assert calls[0] == (0, len(expected)) and calls[-1] == (len(expected), len(expected))
    assert stats.content_hash == index.content_hash()

    texts = {d.id: d.text for d in corpus}
    hits = index.query([q for q, _ in QUESTIONS], k=3)
    assert [h[0].source_id for h in hits] == [src for _, src in QUESTIONS]
    for row in hits:
        assert len(row) == 3
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
        for h in row:
            assert texts[h.source_id][h.start : h.end] == h.text
            assert -1.0 <= h.score <= 1.0 + 1e-6
            assert h.metadata == {"topic": h.source_id.split("/")[0]}

    # Unchanged knowledge: nothing is embedded again.
    again = index.sync(corpus)
    assert (again.embedded_chunks, again.added, again.removed) == (0, 0, 0)
    assert again.kept == len(expected) and again.content_hash == stats.content_hash

    # One document changes at its start, so every one of its offsets moves.
    old_doc = next(d for d in corpus if d.id == "volcanoes.md")
    new_doc = replace(old_doc, text="Updated in 2026. " + old_doc.text)
    changed = [new_doc if d.id == old_doc.id else d for d in corpus]
    after = index.sync(changed)
    new_chunks, old_chunks = (
        chunk_document(new_doc, CFG.size, CFG.overlap),
        chunk_document(old_doc, CFG.size, CFG.overlap),
    )
    assert after.embedded_chunks == after.added == len(new_chunks)
    assert after.removed == len(old_chunks)
    assert index.count() == after.total_chunks == len(chunk_documents(changed, CFG))
    assert index.chunk_ids() == {c.id for c in chunk_documents(changed, CFG)}
    assert after.content_hash != stats.content_hash

    # A document removed: its chunks go, nothing is embedded.
    chess = [c for c in chunk_documents(changed, CFG) if c.source_id == "chess.txt"]
    remaining = [d for d in changed if d.id != "chess.txt"]
    gone = index.sync(remaining)
    assert (gone.removed, gone.embedded_chunks) == (len(chess), 0)
    assert index.count() == len(chunk_documents(remaining, CFG))
    top = index.query(["Which chess piece moves in an L shape?"], k=10)[0]
    assert "chess.txt" not in {h.source_id for h in top}


@pytest.mark.slow
def test_embedded_index_syncs_incrementally_and_answers(tmp_path, embedder, corpus):
    index = KnowledgeIndex(tmp_path / "chroma", name="test kb", embedder=embedder, chunking=CFG)
    assert index.collection_name.startswith("test-kb-")
    _check_sync_and_query(index, corpus)
    assert index.size_bytes() > 0

    # Reopened from disk: the same collection, nothing to embed.
    reopened = KnowledgeIndex(tmp_path / "chroma", name="test kb", embedder=embedder, chunking=CFG)
    remaining = [d for d in corpus if d.id != "chess.txt"]
    remaining = [
        replace(d, text="Updated in 2026. " + d.text) if d.id == "volcanoes.md" else d for d in remaining
    ]
    assert reopened.sync(remaining).embedded_chunks == 0


@pytest.mark.slow
def test_server_index_through_chroma_url(chroma_server, embedder, corpus):
    index = KnowledgeIndex(chroma_url=chroma_server, name="server kb", embedder=embedder, chunking=CFG)
    _check_sync_and_query(index, corpus)
    assert index.size_bytes() is None
    index.drop()


def test_unreachable_server_is_a_backend_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: nothing answers here
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(BackendError) as info:
            KnowledgeIndex(chroma_url=url, chunking=CFG)
    message = str(info.value)
    assert url in message and "\n" not in message
    assert info.value.exit_code == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:legacy embedding function config")  # the text-only probe
def test_no_download_is_ever_attempted(tmp_path, monkeypatch, corpus):
    """HF offline, Chroma's default embedding function forbidden, no non-local socket."""
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    def forbidden(self, input):  # noqa: A002 - Chroma's signature
        raise AssertionError("Chroma's default embedding function was called")

    def no_download(self, *args, **kwargs):
        raise AssertionError("Chroma tried to download its ONNX model")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", forbidden)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", forbidden)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", no_download)

    real_connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            raise AssertionError(f"network connection attempted to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(embeddings_module, "_MODELS", {})  # load the model afresh under the guards

    index = KnowledgeIndex(tmp_path / "chroma", embedder=Embedder(), chunking=CFG)
    index.sync(corpus)
    assert index.query(["knead the dough"], k=1)[0][0].source_id == "baking/bread.md"
    # The collection has no embedding function at all: text without vectors fails, never fetches.
    with pytest.raises(ValueError, match="embedding function"):
        index._collection.query(query_texts=["bread"], n_results=1)


def test_collection_name_keys_on_chunking_and_embedder():
    a = collection_name("kb", ChunkingConfig(size=200, overlap=40), "model-1")
    assert a == collection_name("kb", ChunkingConfig(size=200, overlap=40), "model-1")
    assert a != collection_name("kb", ChunkingConfig(size=300, overlap=40), "model-1")
    assert a != collection_name("kb", ChunkingConfig(size=200, overlap=40), "model-2")
    assert collection_name("  My KB / v2 ", CFG, "m").startswith("My-KB-v2-")
    assert collection_name("!!", CFG, "m").startswith("knowledge-")


def test_metadata_is_flattened_to_chroma_types():
    flat = flatten_metadata(
        {"lang": "en", "n": 3, "ok": True, "w": 0.5, "a": {"b": {"c": 1}}, "tags": ["x", "y"], "none": None}
    )
    assert flat == {"lang": "en", "n": 3, "ok": True, "w": 0.5, "a.b.c": 1, "tags": '["x", "y"]'}
