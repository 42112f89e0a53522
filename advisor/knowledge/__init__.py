"""The knowledge store behind RAG: documents -> chunks -> embeddings -> a Chroma index.

>>> from advisor.knowledge import KnowledgeIndex, load_knowledge  # doctest: +SKIP
>>> index = KnowledgeIndex("work/chroma", name="catalogue")  # doctest: +SKIP
>>> stats = index.sync(load_knowledge("docs/"))  # embeds only new or changed chunks  # doctest: +SKIP
>>> hits = index.query(["what does the blue kettle cost?"], k=3)  # doctest: +SKIP
"""

from __future__ import annotations

from advisor.knowledge.chunking import Chunk, ChunkingConfig, chunk_document, chunk_documents
from advisor.knowledge.documents import Document, load_knowledge
from advisor.knowledge.embeddings import Embedder
from advisor.knowledge.index import Hit, KnowledgeIndex, SyncStats
from advisor.knowledge.metrics import mrr, recall_at_k

__all__ = [
    "Chunk",
    "ChunkingConfig",
    "Document",
    "Embedder",
    "Hit",
    "KnowledgeIndex",
    "SyncStats",
    "chunk_document",
    "chunk_documents",
    "load_knowledge",
    "mrr",
    "recall_at_k",
]
