"""The `prompt-search` lever: a seeded random search over instructions and demonstrations.

The prompt rung's fair chance before retrieval or fine-tuning is called for. Each
candidate is an instruction (the task's prompt, one of its `prompt.variants`, or a
wording a proposer model wrote) plus a demonstration set (which train examples, how
many, in which order). Every candidate is scored on the dev split carved from train
(`advisor.prompting.dev_split`) through the runner's cached prediction path, so a
killed search resumes and a rerun is free; the best on dev is scored once on eval.
Demonstrations come from train minus dev, and eval is never looked at for a choice.

This is DSPy's `BootstrapFewShotWithRandomSearch` idea (random demonstration sets,
scored on a held-out set) without its bootstrapping of traces; it is a few lines over
our own cache and scorer, where DSPy would bring its own LM clients and caches.

The search's compute (every dev answer, stored ones included) is its setup cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from advisor.data import assert_no_eval, stable_hash
from advisor.errors import InputError
from advisor.leverkit.dev_choice import DevChoice, choose_on_dev, cost_of
from advisor.prompting import (
    answer_text,
    check_variants,
    dev_split,
    make_request,
    render_messages,
    variant_names,
    with_prompt,
    with_variant,
)
from advisor.spec import Task
from advisor.types import Artifact, Example, HeldOut, Lever, LeverContext, Request


class ProposerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="'hf:<name or folder>' or 'openai:<model>': the model that writes instructions.")
    proposals: int = Field(2, ge=1, le=20, description="Instruction wordings to ask for (each from its own sample).")
    examples: int = Field(6, ge=1, le=50, description="Solved train examples shown to the proposer per proposal.")
    max_new_tokens: int = Field(160, ge=16, le=2048, description="Length budget of one proposed instruction.")

    @field_validator("model")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v.split(":", 1)[0] not in {"hf", "openai"} or ":" not in v:
            raise ValueError(f"'{v}' must start with 'hf:' or 'openai:'")
        return v


class PromptSearchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: int = Field(8, ge=1, le=500, description="Candidates scored on dev (instruction + demonstrations).")
    dev_items: int | None = Field(
        None, ge=1, le=10_000, description="Dev items each candidate is scored on (default: prompt.dev_size)."
    )
    max_shots: int = Field(6, ge=0, le=64, description="Most demonstrations a candidate shows.")
    seed: int = Field(0, description="Seed of the search (which candidates are drawn).")
    proposer: ProposerOptions | None = Field(
        None, description="A model that proposes instruction wordings from train examples; without it only "
        "the task's prompt and its variants are searched."
    )


@dataclass(frozen=True)
class Candidate:
    instruction: str  # 'default', a variant's name, or 'proposed-N'
    shots: tuple[Example, ...]

    @property
    def name(self) -> str:
        return f"{self.instruction}+{len(self.shots)}shots" + (
            "[" + ",".join(s.id for s in self.shots) + "]" if self.shots else "")


def draw_candidates(instructions: list[str], pool: list[Example], n: int, max_shots: int, seed: int) -> list[Candidate]:
    """The search space, seeded: every instruction zero-shot first (the cheapest to serve), then
    random (instruction, k in 1..max_shots, k pool examples in a random order) until `n` distinct ones.
    """
    out: list[Candidate] = [Candidate(ins, ()) for ins in instructions][:n]
    seen = {c.name for c in out}
    rng = random.Random(f"prompt-search:{seed}")
    tries = 0
    while len(out) < n and max_shots > 0 and pool and tries < 100 * n:
        tries += 1
        k = rng.randint(1, min(max_shots, len(pool)))
        cand = Candidate(rng.choice(instructions), tuple(rng.sample(pool, k)))  # sample order is the shown order
        if cand.name not in seen:
            seen.add(cand.name)
            out.append(cand)
    return out


PROPOSER_SYSTEM = (
    "You write the instruction (system message) for a small language model. "
    "Reply with the instruction only, in plain sentences, no preamble."
)


class InstructionProposer(Lever):
    """Asks a model for instruction wordings from solved train examples. A pseudo-lever, so its
    answers go through the runner's cached path (a rerun asks nothing) under their own name."""

    name = "prompt-search-proposer"
    family = "prompt"

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.private["task"]
        opts: ProposerOptions = artifact.private["options"]
        samples: list[list[Example]] = artifact.private["samples"]
        out = []
        for ex in examples:  # one pseudo-example per proposal; its index picks the sample shown
            shown = "\n\n".join(f"Input: {s.input}\nOutput: {answer_text(task, s.output)}"
                                for s in samples[int(ex.input)])
            labels = f"\nThe output is always one of: {', '.join(task.labels)}." if task.labels else ""
            user = (f"Task: {task.description or task.name}{labels}\n\nSolved examples:\n\n{shown}\n\n"
                    f"Current instruction:\n{task.prompt.system or '(none)'}\n\n"
                    "Write a better instruction that makes a model give exactly outputs like these.")
            out.append(Request(ex.id, [{"role": "system", "content": PROPOSER_SYSTEM},
                                       {"role": "user", "content": user}], max_new_tokens=opts.max_new_tokens))
        return out


def _proposer_backend(ctx: LeverContext, model: str) -> Any:
    if model == ctx.task.model:
        return ctx.base_backend()
    from advisor.backends import make_backend

    return make_backend(ctx.task.model_copy(update={"model": model}), ctx.cache_dir)


def propose_instructions(ctx: LeverContext, opts: ProposerOptions, pool: list[Example],
                         seed: int) -> tuple[list[str], float, float]:
    """Instruction wordings from the proposer model, each written from its own seeded sample of the pool
    (never dev, never eval), and their compute seconds and cost. Empty and repeated answers are dropped."""
    assert ctx.predictor is not None
    rng = random.Random(f"proposer:{seed}")
    samples = [rng.sample(pool, min(opts.examples, len(pool))) for _ in range(opts.proposals)]
    backend = _proposer_backend(ctx, opts.model)
    ident = stable_hash(["proposer", opts.model_dump(), [[s.hash for s in sm] for sm in samples]])[:16]
    artifact = Artifact(lever=InstructionProposer.name, identity=ident, backend=backend,
                        private={"task": ctx.task, "options": opts, "samples": samples})
    slots = [Example(f"proposal-{i}", str(i), None, {}, "proposer", str(i)) for i in range(opts.proposals)]
    preds, _, _ = ctx.predictor.predict(InstructionProposer(), artifact, slots, "proposing instructions")
    out: list[str] = []
    for p in preds:
        text = p.raw.strip()[:2000]
        if text and text not in out and text != ctx.task.prompt.system:
            out.append(text)
    return (out, *cost_of(backend, preds))


class PromptSearchLever(Lever):
    """The best (instruction, demonstrations) of a seeded random search, chosen on dev."""

    name = "prompt-search"
    rung = 1.5  # prompt-only, so served as cheaply as few-shot; its setup is the search
    family = "prompt"
    options_model = PromptSearchOptions

    def _artifact(self, ctx: LeverContext, task: Task, cand: Candidate, instruction_text: dict[str, Any]) -> Artifact:
        ident = stable_hash([self.name, instruction_text, [s.hash for s in cand.shots]])[:16]
        return Artifact(lever=self.name, identity=ident, backend=ctx.base_backend(),
                        private={"task": task, "shots": list(cand.shots)},
                        info={"instruction": cand.instruction, "shots": len(cand.shots),
                              "shot_ids": [s.id for s in cand.shots]})

    def prepare(self, ctx: LeverContext, options: BaseModel) -> Artifact:
        assert isinstance(options, PromptSearchOptions)
        task = ctx.task
        dev, pool = dev_split(task, ctx.data.train, options.dev_items)
        if not dev:
            raise InputError("prompt-search needs at least 2 train examples (a dev split and a pool)",
                             file=task.path(task.data.train))
        assert_no_eval(pool + dev, ctx.data.eval, what="the prompt-search pool")
        check_variants(task, dev + ctx.data.eval)
        tasks = {name: with_variant(task, name) for name in variant_names(task)}
        proposed: list[str] = []
        propose_s = propose_usd = 0.0
        if options.proposer is not None:
            proposed, propose_s, propose_usd = propose_instructions(ctx, options.proposer, pool, options.seed)
            tasks.update({f"proposed-{i + 1}": with_prompt(task, system=text) for i, text in enumerate(proposed)})
        cands = draw_candidates(list(tasks), pool, options.candidates, options.max_shots, options.seed)
        artifacts = {c.name: self._artifact(ctx, tasks[c.instruction], c,
                                            tasks[c.instruction].prompt.model_dump(include={"system", "template"}))
                     for c in cands}
        choice = choose_on_dev(ctx, self, artifacts, dev, cheapness={c.name: len(c.shots) for c in cands})
        chosen = artifacts[choice.chosen]
        choice.seconds += propose_s  # the proposer's answers are part of the search's setup
        choice.usd += propose_usd
        chosen.setup_seconds, chosen.setup_usd = choice.seconds, choice.usd
        choice.extra.update(candidates=cands, proposed=proposed)
        chosen.private["choice"] = choice
        return chosen

    def held_out(self, ctx: LeverContext, options: BaseModel, artifact: Artifact) -> HeldOut:
        """The search's own dev split (its demonstrations come from the rest of train)."""
        assert isinstance(options, PromptSearchOptions)
        dev, _ = dev_split(ctx.task, ctx.data.train, options.dev_items)
        return HeldOut("dev", dev, priced=True)

    def requests(self, artifact: Artifact, examples: list[Example]) -> list[Request]:
        task: Task = artifact.private["task"]
        shots: list[Example] = artifact.private["shots"]
        return [make_request(task, ex, render_messages(task, ex, shots), shots=[s.id for s in shots])
                for ex in examples]

    def report_details(self, artifact: Artifact, eval_metrics: dict[str, float]) -> dict[str, Any]:
        """results.json `details.search`: budget, every candidate's dev score, the chosen one's dev and
        eval scores and their gap (how much the search flattered itself), and the search's cost."""
        choice: DevChoice = artifact.private["choice"]
        task: Task = artifact.private["task"]
        cands: list[Candidate] = choice.extra["candidates"]
        by_name = {c.name: c for c in cands}
        best = by_name[choice.chosen]
        return {"search": {
            "candidates": len(cands),
            "tie_break": choice.extra["tie_break"],
            "chosen": {"instruction": best.instruction, "shots": len(best.shots),
                       "shot_ids": [s.id for s in best.shots], "system": task.prompt.system,
                       "template": task.prompt.template},
            **choice.summary(eval_metrics, task.target.metric),
            "proposed_instructions": choice.extra["proposed"],
            "trials": [{"instruction": c.instruction, "shots": len(c.shots), "shot_ids": [s.id for s in c.shots],
                        "dev_score": choice.scores[c.name], "chosen": c.name == choice.chosen,
                        "dev_metrics": dict(zip(choice.extra["tie_break"], choice.extra["dev_metrics"][c.name][1:]))}
                       for c in cands],

        }}
