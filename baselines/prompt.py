"""The prompt levers: zero-shot and few-shot. The cheapest rungs of the ladder.

Few-shot examples come from train only, shown as earlier chat turns. How they are
picked is an option: `fixed` (the same k for every item, covering the labels),
`random` (a seeded sample, the same for every item) or `similar` (per item, the
k nearest train examples by embedding).

When the task names prompt variants (`prompt.variants`), both levers score every
wording on a dev split carved from train (`prompt.dev_size`, seeded) and keep the
task's own wording unless another beats it there beyond noise (advisor/choice.py);
eval is scored once, with the chosen one. The few-shot pool is then train
minus dev, so a dev item is never shown as a demonstration to the wording it scores.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.data import Dataset, assert_no_eval, stable_hash
from advisor.errors import InputError
from advisor.leverkit.dev_choice import DevChoice, choose_on_dev
from advisor.prompting import (
    answer_text,
    check_variants,
    dev_split,
    make_request,
    render_messages,
    render_user,
    variant_names,
    with_variant,
)
from advisor.spec import Task
from advisor.types import Artifact, Example, HeldOut, Lever, LeverContext, Request

__all__ = ["FewShotLever", "ZeroShotLever", "answer_text", "make_request", "render_messages", "render_user"]


def _variant_rows(choice: DevChoice) -> list[dict[str, Any]]:
    others = choice.extra["tie_break"]
    return [{"name": n, "dev_score": s, "chosen": n == choice.chosen,
             "dev_metrics": dict(zip(others, choice.extra["dev_metrics"][n][1:]))} for n, s in choice.scores.items()]


def _without_dev(ctx: LeverContext, pool: list[Example]) -> LeverContext:
    """`ctx` whose train split is the pool left after the dev split (what demonstrations come from)."""
    data = Dataset(train=pool, eval=ctx.data.eval, leakage_removed=ctx.data.leakage_removed)
    return dataclasses.replace(ctx, data=data)


class ZeroShotOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZeroShotLever(Lever):
    """The task's prompt as written, nothing else."""

    name = "prompt"
    rung = 0
    family = "prompt"
    options_model = ZeroShotOptions

    def _artifact(self, ctx: LeverContext, variant: str) -> Artifact:
        # The default keeps the identity it always had, so answers cached before variants existed stay valid.
        ident: list[Any] = [self.name]
        if variant != "default":
            ident += [variant, ctx.task.prompt.variants[variant].model_dump()]
        info: dict[str, Any] = {"shots": 0, **({"variant": variant} if ctx.task.prompt.variants else {})}
        return Artifact(lever=self.name, identity=stable_hash(ident)[:16], backend=ctx.base_backend(),
                        private={"task": with_variant(ctx.task, variant)}, info=info)

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        if not ctx.task.prompt.variants:
            return self._artifact(ctx, "default")
        dev, _ = dev_split(ctx.task, ctx.data.train)
        check_variants(ctx.task, dev + ctx.data.eval)  # a broken variant fails here, named, before any model time
        candidates = {name: self._artifact(ctx, name) for name in variant_names(ctx.task)}
        choice = choose_on_dev(ctx, self, candidates, dev, default="default")
        artifact = candidates[choice.chosen]
        artifact.setup_seconds, artifact.setup_usd = choice.seconds, choice.usd
        artifact.private["choice"] = choice
        return artifact

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.private["task"]
        return [make_request(task, ex, render_messages(task, ex)) for ex in examples]

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut:
        """The dev split (train items; with variants, the ones the wording was chosen on)."""
        dev, _ = dev_split(ctx.task, ctx.data.train)
        return HeldOut("dev", dev, priced="choice" in artifact.private)

    def report_details(self, artifact: Artifact, eval_metrics: dict[str, float]) -> dict[str, Any]:
        """results.json `details.prompt_variants` (every wording's dev score) and `details.prompt_choice`."""
        return _choice_details(artifact, eval_metrics)


def _choice_details(artifact: Artifact, eval_metrics: dict[str, float]) -> dict[str, Any]:
    choice: DevChoice | None = artifact.private.get("choice")
    if choice is None:
        return {}
    metric = artifact.private["task"].target.metric
    return {"prompt_variants": _variant_rows(choice),
            "prompt_choice": {"chosen": choice.chosen, "tie_break": choice.extra["tie_break"],
                              **({"test": choice.extra["test"]} if "test" in choice.extra else {}),
                              **choice.summary(eval_metrics, metric)}}


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


class FewShotLever(Lever):
    """k labelled train examples as earlier chat turns."""

    name = "prompt-few-shot"
    rung = 1
    family = "prompt"
    options_model = FewShotOptions

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        if not ctx.task.prompt.variants:
            return self._prepare(ctx, options)
        dev, pool = dev_split(ctx.task, ctx.data.train)
        check_variants(ctx.task, dev + ctx.data.eval)
        base = self._prepare(_without_dev(ctx, pool), options)  # demonstrations never come from dev
        candidates: dict[str, Artifact] = {}
        for name in variant_names(ctx.task):
            extra = [] if name == "default" else [name, ctx.task.prompt.variants[name].model_dump()]
            candidates[name] = dataclasses.replace(
                base, identity=stable_hash([base.identity, *extra])[:16] if extra else base.identity,
                private={**base.private, "task": with_variant(ctx.task, name)}, info={**base.info, "variant": name})
        choice = choose_on_dev(ctx, self, candidates, dev, default="default")
        artifact = candidates[choice.chosen]
        artifact.setup_seconds += choice.seconds
        artifact.setup_usd += choice.usd
        artifact.private["choice"] = choice
        return artifact

    def report_details(self, artifact: Artifact, eval_metrics: dict[str, float]) -> dict[str, Any]:
        """results.json `details.prompt_variants` (every wording's dev score) and `details.prompt_choice`."""
        return _choice_details(artifact, eval_metrics)

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut:
        """The dev split, never shown as a demonstration to the items it scores: with variants the
        demonstrations come from the rest of train; without, dev items that are shots are left
        out, and `similar` selection never retrieves the item itself."""
        dev, _ = dev_split(ctx.task, ctx.data.train)
        shown = set(artifact.info.get("shot_ids") or [])
        dev = [ex for ex in dev if ex.id not in shown]
        build = None
        if "similar" in artifact.private:
            def build(examples: list[Example]) -> list[Request]:
                return self._requests(artifact, examples, exclude_self=True)
        return HeldOut("dev", dev, build=build, priced="choice" in artifact.private)

    def _prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
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
            from advisor.leverkit.retrieval import RagOptions, prepare_retriever

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
                        private=state, info=info)

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        return self._requests(artifact, examples)

    def _requests(self, artifact: Artifact, examples: list[Example], exclude_self: bool = False) -> list[Request]:
        task: Task = artifact.private["task"]
        seconds = 0.0
        if "similar" in artifact.private:
            retriever = artifact.private["similar"]
            hits, seconds = retriever.retrieve(examples, exclude_self)
            shot_lists = [retriever.shots(found) for found in hits]
        else:
            shot_lists = [artifact.private["shots"]] * len(examples)
        return [
            make_request(task, ex, render_messages(task, ex, shots), shots=[s.id for s in shots],
                         **({"prep_seconds": seconds} if seconds else {}))
            for ex, shots in zip(examples, shot_lists)
        ]
