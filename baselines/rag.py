"""The RAG lever: retrieve from a Chroma index and put what it finds into the prompt.

Two sources. `knowledge`: chunks of the task's documents (facts that change; swap
the knowledge, run again, only changed documents are re-embedded, nothing is
retrained). `examples`: labelled train examples most similar to the question
(for a task without documents, often the strongest cheap lever for
classification). `auto` takes knowledge when the task has some.

Every prediction records the chunks it was given; when eval examples name their
gold documents (`sources: [...]`), recall@k and MRR are reported beside the answer
metric, so a retrieval miss can be told from a generation error. The retrieval itself is
advisor/leverkit/retrieval.py, shared with few-shot `similar` selection and lora-rag.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from advisor.leverkit.retrieval import RagOptions, prepare_retriever, rag_artifact, retrieval_requests
from advisor.types import Artifact, Example, HeldOut, Lever, LeverContext, Request


class RagLever(Lever):
    """Retrieval-augmented prompting over a Chroma index."""

    name = "rag"
    rung = 2
    family = "retrieval"
    options_model = RagOptions

    def retrieved_chars(self, options: BaseModel) -> int:
        assert isinstance(options, RagOptions)
        return options.max_context_chars

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        assert isinstance(options, RagOptions)
        retriever = prepare_retriever(ctx, options, self.name)
        return rag_artifact(ctx, options, retriever, self.name, ctx.base_backend())

    def index(self, ctx: LeverContext, options: BaseModel) -> dict[str, Any]:
        """Build or refresh the index alone (`advise index`)."""
        assert isinstance(options, RagOptions)
        r = prepare_retriever(ctx, options, self.name)
        return {**r.stats.__dict__, "collection": r.index.collection_name, "index_bytes": r.index.size_bytes()}

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        return retrieval_requests(artifact.private.task, artifact.private, examples)

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut:
        """The prompt levers' dev split of train; retrieving similar train examples for a dev item
        never finds the item itself."""
        from advisor.prompting import dev_split

        dev, _ = dev_split(ctx.task, ctx.data.train)
        return HeldOut("dev", dev, build=lambda examples: retrieval_requests(
            artifact.private.task, artifact.private, examples, exclude_self=True))
