"""The prompt levers: zero-shot and few-shot. The cheapest rungs of the ladder.

Few-shot examples come from train only, shown as earlier chat turns. How they are
picked is an option: `fixed` (the same k for every item, covering the labels),
`random` (a seeded sample, the same for every item) or `similar` (per item, the
k nearest train examples by embedding).
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.data import assert_no_eval, stable_hash
from advisor.errors import InputError
from advisor.prompting import answer_text, make_request, render_messages, render_user
from advisor.spec import Task
from advisor.types import Artifact, Example, LeverContext, Request

__all__ = ["FewShotLever", "ZeroShotLever", "answer_text", "make_request", "render_messages", "render_user"]

class ZeroShotOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZeroShotLever:
    """The task's prompt as written, nothing else."""

    name = "prompt"
    rung = 0
    options_model = ZeroShotOptions

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        return Artifact(lever=self.name, identity=stable_hash([self.name])[:16], backend=ctx.base_backend(),
                        state=ctx.task, info={"shots": 0})

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.state
        return [make_request(task, ex, render_messages(task, ex)) for ex in examples]


class FewShotOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1, le=64, description="Examples shown before each item.")
    selection: Literal["fixed", "random", "similar"] = Field(
        "fixed", description="fixed: same k for all, covering labels; random: seeded sample; similar: nearest by embedding."
    )
    seed: int = Field(0, description="Seed for `random` selection.")
    embedding: str = Field("default", description="sentence-transformers model for `similar` selection.")


def pick_fixed(task: Task, pool: list[Example], k: int) -> list[Example]:
    """The first examples in file order, round-robin over labels so every label is shown."""
    if task.kind != "classification" or not task.labels:
        return pool[:k]
    by_label: dict[str, list[Example]] = {lab: [] for lab in task.labels}
    for ex in pool:
        by_label[ex.output].append(ex)
    picked: list[Example] = []
    while len(picked) < min(k, len(pool)):
        for lab in task.labels:
            if by_label[lab] and len(picked) < k:
                picked.append(by_label[lab].pop(0))
    return picked


class FewShotLever:
    """k labelled train examples as earlier chat turns."""

    name = "prompt-few-shot"
    rung = 1
    options_model = FewShotOptions

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        assert isinstance(options, FewShotOptions)
        pool = ctx.data.train
        assert_no_eval(pool, ctx.data.eval, what="the few-shot pool")
        if not pool:
            raise InputError("few-shot needs train examples; the train set is empty",
                             file=ctx.task.path(ctx.task.data.train))
        info: dict[str, Any] = {"k": options.k, "selection": options.selection}
        state: dict[str, Any] = {"task": ctx.task, "options": options}
        if options.selection == "similar":
            # The rag lever's retriever over labelled train examples: a Chroma index that is
            # embedded once and refreshed incrementally, shared with `rag` when its settings match.
            from baselines.rag import RagOptions, prepare_retriever

            rag = RagOptions(k=options.k, source="examples", embedding=options.embedding)
            state["similar"] = retriever = prepare_retriever(ctx, rag, self.name)
            ident = [self.name, options.model_dump(), retriever.index.embedder.identity, [e.hash for e in pool]]
            info["index"] = retriever.index.collection_name
        else:
            if options.selection == "fixed":
                shots = pick_fixed(ctx.task, pool, options.k)
            else:
                shots = random.Random(options.seed).sample(pool, min(options.k, len(pool)))
            state["shots"] = shots
            info["shot_ids"] = [s.id for s in shots]
            ident = [self.name, options.model_dump(), [s.hash for s in shots]]
        return Artifact(lever=self.name, identity=stable_hash(ident)[:16], backend=ctx.base_backend(),
                        state=state, info=info)

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.state["task"]
        seconds = 0.0
        if "similar" in artifact.state:
            retriever = artifact.state["similar"]
            hits, seconds = retriever.retrieve(examples)
            shot_lists = [retriever.shots(found) for found in hits]
        else:
            shot_lists = [artifact.state["shots"]] * len(examples)
        return [
            make_request(task, ex, render_messages(task, ex, shots), shots=[s.id for s in shots],
                         **({"prep_seconds": seconds} if seconds else {}))
            for ex, shots in zip(examples, shot_lists)
        ]
