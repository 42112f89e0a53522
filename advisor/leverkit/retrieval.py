"""Retrieval, shared by the levers that put retrieved text into a prompt: `rag` (baselines/rag.py),
`prompt-few-shot` with `selection: similar` (baselines/prompt.py) and `lora-rag` (baselines/lora.py).

A `Retriever` syncs a Chroma index over the task's knowledge (chunks of its documents) or over
labelled train examples, and turns its hits into prompt context or demonstrations;
`retrieval_requests` builds the requests, recording the chunks each item was given and, where eval
items name their gold sources, recall@k and MRR; `rag_artifact` prices the index as setup (and
re-indexing as upkeep). `RagOptions` are the retrieval settings, as under `lever_options.rag`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.data import assert_no_eval, stable_hash
from advisor.errors import InputError
from advisor.prompting import answer_text, make_request, render_messages, render_user
from advisor.spec import Task
from advisor.types import Artifact, Example, LeverContext, Request


class RagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(3, ge=1, le=50, description="Chunks (or examples) retrieved per question.")
    source: Literal["auto", "knowledge", "examples"] = Field(
        "auto", description="knowledge: the task's documents; examples: labelled train examples; auto: "
        "knowledge when the task has some."
    )
    chunk_size: int = Field(800, ge=50, description="Most characters in one chunk (paragraphs kept whole).")
    chunk_overlap: int = Field(100, ge=0, description="Characters carried into the next chunk.")
    embedding: str = Field("default", description="sentence-transformers model: 'default' or a local path; "
                           "or 'openai:<model>' for an OpenAI-compatible /v1/embeddings endpoint.")
    chroma_url: str | None = Field(
        None, description="Use a running Chroma server (http://host:port) instead of the embedded store."
    )
    index_dir: Path | None = Field(
        None, description="Embedded index folder (default: <cache>/indexes, shared by runs of the task)."
    )
    max_context_chars: int = Field(4000, ge=100, description="Cap on retrieved text put into one prompt.")

    def settings(self) -> dict[str, Any]:
        """The options that shape what is retrieved, not where the index lives (part of identities)."""
        return self.model_dump(mode="json", exclude={"index_dir", "chroma_url"})


def _documents_from_examples(pool: list[Example], task: Task) -> list[Any]:
    from advisor.knowledge import Document

    return [Document(ex.id, ex.input, {"answer": answer_text(task, ex.output)}) for ex in pool]


class Retriever:
    """A synced index plus what to do with its hits; lives in Artifact.private."""

    def __init__(self, ctx: LeverContext, options: RagOptions, source: str, name: str) -> None:
        from advisor.backends.openai_embeddings import make_embedder
        from advisor.knowledge import ChunkingConfig, KnowledgeIndex, load_knowledge

        task = ctx.task
        self.task, self.options, self.source = task, options, source
        if source == "knowledge":
            docs = load_knowledge(task.data_path("knowledge"))
            self.pool: dict[str, Example] = {}
        else:
            assert_no_eval(ctx.data.train, ctx.data.eval, what="the retrieval pool")
            if not ctx.data.train:
                raise InputError("retrieving examples needs train examples; the train set is empty",
                                 file=task.path(task.data.train))
            docs = _documents_from_examples(ctx.data.train, task)
            self.pool = {ex.id: ex for ex in ctx.data.train}
        try:
            chunking = ChunkingConfig(size=options.chunk_size, overlap=options.chunk_overlap)
        except ValueError as e:
            raise InputError(str(e).splitlines()[-1], field=f"lever_options.{name}.chunk_overlap") from None
        folder = options.index_dir or ctx.cache_dir / "indexes"
        self.index = KnowledgeIndex(
            None if options.chroma_url else folder,
            name=f"{task.name}-{source}",
            chroma_url=options.chroma_url,
            embedder=make_embedder(options.embedding, task),  # 'openai:<model>' embeds through the API
            chunking=chunking,
        )
        self.docs = docs
        progress = ctx.progress(f"{name}: indexing {source}", len(docs)) if ctx.progress else None
        start = time.perf_counter()
        self.stats = self.index.sync(docs, progress)
        self.sync_seconds = time.perf_counter() - start

    def seconds_per_chunk(self) -> tuple[float, str]:
        """Embedding seconds per chunk: from this sync, or timed now on a sample if it embedded little."""
        from advisor.knowledge import chunk_documents

        # What building the index cost is kept with the index, so a rerun reports the same setup.
        recorded = self.index.build_cost()
        if recorded is not None:
            return recorded["seconds_per_chunk"], f"{recorded['chunks']} chunks embedded ({recorded['measured']})"
        sample = [c.text for c in chunk_documents(self.docs, self.index.chunking)[:64]]
        if not sample:
            return 0.0, "empty index"
        self.index.embedder.encode(sample[:4])  # warm up: the first call pays for loading
        start = time.perf_counter()
        self.index.embedder.encode(sample)
        rate = (time.perf_counter() - start) / len(sample)
        self.index.record_build_cost(rate, 0)  # timed, not built: any real build replaces it
        return rate, f"{len(sample)} chunks timed"

    def retrieve(self, examples: list[Example], exclude_self: bool = False) -> tuple[list[list[Any]], float]:
        """The k best hits per example, and the retrieval seconds per example.

        `exclude_self` (training with retrieved train examples) drops a train example's own
        entry from its hits, which would otherwise teach the model to copy.
        """
        k = self.options.k
        exclude_self = exclude_self and self.source == "examples"
        start = time.perf_counter()
        hits = self.index.query([ex.input for ex in examples], k=k + 1 if exclude_self else k)
        if exclude_self:
            hits = [[h for h in found if h.source_id != ex.id][:k] for ex, found in zip(examples, hits)]
        return hits, (time.perf_counter() - start) / max(len(examples), 1)

    def context_text(self, hits: list[Any]) -> str:
        parts, used = [], 0
        for h in hits:
            piece = f"[{h.source_id}] {h.text.strip()}"
            if used + len(piece) > self.options.max_context_chars:
                break
            parts.append(piece)
            used += len(piece)
        return "\n\n".join(parts)

    def shots(self, hits: list[Any]) -> list[Example]:
        """The train examples behind the hits, once each (a long input spans chunks), most similar last:
        nearest to the question the model answers next."""
        ids = list(dict.fromkeys(h.source_id for h in hits if h.source_id in self.pool))
        return [self.pool[i] for i in reversed(ids)]


def retrieval_scores(example: Example, hits: list[Any], k: int) -> dict[str, float]:
    """recall@k and reciprocal rank of this item, when it names gold sources."""
    from advisor.knowledge import mrr, recall_at_k

    gold = example.fields.get("sources")
    if not gold:
        return {}
    ranked = [h.source_id for h in hits]
    return {f"retrieval_recall@{k}": recall_at_k([ranked], [list(gold)], k), "retrieval_mrr": mrr([ranked], [list(gold)])}


def prepare_retriever(ctx: LeverContext, options: RagOptions, name: str) -> Retriever:
    source = options.source
    if source == "auto":
        source = "knowledge" if ctx.task.data.knowledge else "examples"
    if source == "knowledge" and not ctx.task.data.knowledge:
        raise InputError("source 'knowledge' needs data.knowledge in the task", field=f"lever_options.{name}.source")
    return Retriever(ctx, options, source, name)


def retrieval_requests(task: Task, retriever: Retriever, examples: list[Example],
                       exclude_self: bool = False) -> list[Request]:
    """Requests with retrieved context (see `Retriever.retrieve` for `exclude_self`)."""
    hits, seconds = retriever.retrieve(examples, exclude_self)
    out = []
    for ex, found in zip(examples, hits):
        context = {
            "chunks": [h.chunk_id for h in found],
            "sources": [h.source_id for h in found],
            "prep_seconds": seconds,
            "metrics": retrieval_scores(ex, found, retriever.options.k),
        }
        if retriever.source == "knowledge":
            messages = render_messages(task, ex, context=retriever.context_text(found))
        else:
            lines = [f"{render_user(task, s)}\nAnswer: {answer_text(task, s.output)}" for s in retriever.shots(found)]
            messages = render_messages(task, ex, context="Solved examples like this one:\n\n" + "\n\n".join(lines))
        out.append(make_request(task, ex, messages, **context))
    return out


def rag_artifact(ctx: LeverContext, options: RagOptions, retriever: Retriever, name: str, backend: Any,
                 extra_identity: Any = None, setup_usd: float = 0.0) -> Artifact:
    """The artifact of a retrieval lever: index cost as setup, re-indexing as upkeep."""
    costs = ctx.task.costs
    hourly = costs.gpu_hour_usd if backend.device == "cuda" else costs.cpu_hour_usd
    per_chunk, basis = retriever.seconds_per_chunk()
    full_seconds = per_chunk * retriever.stats.total_chunks  # embedding the whole knowledge once
    info = {
        "source": retriever.source,
        "collection": retriever.index.collection_name,
        "index": {"total_chunks": retriever.stats.total_chunks, "embedded_now": retriever.stats.embedded_chunks,
                  "removed_now": retriever.stats.removed, "content_hash": retriever.stats.content_hash,
                  "bytes": retriever.index.size_bytes(), "chroma_url": options.chroma_url,
                  "embedder": retriever.index.embedder.identity, "sync_seconds": retriever.sync_seconds},
    }
    # The index's content is not part of the identity: each request carries the text it retrieved,
    # so a knowledge update recomputes exactly the questions whose retrieved chunks changed.
    identity = stable_hash([name, options.settings(),
                            retriever.index.embedder.identity, extra_identity])[:16]
    return Artifact(
        lever=name,
        identity=identity,
        backend=backend,
        setup_seconds=full_seconds,
        setup_usd=setup_usd + full_seconds * hourly / 3600,
        upkeep_usd_per_month=costs.reindex_per_month * full_seconds * hourly / 3600,
        info={**info, "setup_basis": basis},
        private=retriever,
    )
