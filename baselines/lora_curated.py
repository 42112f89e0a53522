"""`lora-curated`: the `lora` lever trained on train minus its suspected label errors.

Cleaning the data as a measured lever (issue 25, item 4). Before training, the audit's own
label-error check (`advisor.audit.label_errors.check_labels`: confident learning on out-of-fold
probabilities, see that module) runs over the train split the run trains on, and every train item it
flags is dropped, automatically: no person confirms them. Everything else is `lora`'s: the same
options, the same training code (`baselines.lora.build_adapter`), the same label ranking ("sum").
Eval is never part of the check here (the audit checks eval too; a lever that trains must not let eval
labels decide what it trains on).

What the row records (results.json `artifact.info.curation`): the method, how many and which train ids
were dropped (with their given and suggested labels and scores), labels too small to check, the
audit's measured seconds and what they cost, and the review assumption.

The price includes the curation it would take:
- the audit's compute (embedding + cross-validation, measured) at the machine's $/hour, in setup, and
  again in upkeep at each retraining (`costs.retrain_per_month`: refreshed data is audited again);
- a person confirming the suspects, when `review_seconds_per_item` > 0: suspects × seconds ×
  `costs.engineer_hour_usd`. The default is 0 because the lever, as measured, drops the suspects
  unreviewed (issue 25: "automatically, no person needed"); the record then says no review is assumed.
  Set it to price a review (e.g. 30 s an item for a person reading one short labelled text and its
  suggested label: an assumption to state, not a measurement).

The adapter's version hashes the curated training pairs, the dropped ids and the method, so it never
collides with the plain `lora` adapter in the store, even when nothing is dropped.

Where the check cannot run (a task that is not classification; too few examples per label or in all:
`check_labels`' skip reasons; no embedding model) the lever refuses with that reason, exit 2: training
on everything under the curated name would be `lora` mislabelled.

A learning curve (`--learning-curve`) trains on subsets of the cleaned train split: the suspects are
found once on the whole split and dropped from each subset; a point's `n_train` counts the subset
before the drop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from advisor.audit.label_errors import METHOD, LabelCheck, check_labels
from advisor.audit.sources import Record
from advisor.data import stable_hash
from advisor.errors import InputError
from advisor.events import status
from advisor.prompting import answer_text, render_messages
from advisor.types import Artifact, Example, LeverContext
from baselines.lora import LoraLever, LoraOptions

CHECKER = "advisor.audit.label_errors.check_labels"


class LoraCuratedOptions(LoraOptions):
    """`lever_options.lora-curated`: lora's training settings, plus the review the price assumes."""

    review_seconds_per_item: float = Field(
        0.0, ge=0, description="Seconds a person spends confirming one suspected label error, priced at "
        "costs.engineer_hour_usd. 0 (default): the suspects are dropped unreviewed, as the lever measures.")


def _not_classification(kind: str) -> str:
    return (f"lora-curated drops the train items whose label is likely wrong, which the label-error check "
            f"(advisor/audit/label_errors.py) finds for classification tasks only; this task is {kind}. "
            "Use lora, or drop lora-curated from levers")


def _audit_key(ctx: LeverContext) -> str:
    """What the check's result depends on: the train items as the run trains on them, the labels, the
    seed, the embedding model and the method."""
    task = ctx.task
    items = [[ex.id, ex.input, ex.output] for ex in ctx.data.train]
    return stable_hash([METHOD, list(task.labels or []), task.seed, task.audit.embedding, items])[:16]


def _cached_audit(ctx: LeverContext) -> dict[str, Any]:
    """The label-error check over the run's train split, as the curation record; kept in the cache so a
    rerun on the same data reuses it (its seconds are those measured when it ran)."""
    path = Path(ctx.cache_dir) / "curation" / f"{_audit_key(ctx)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from advisor.knowledge.embeddings import Embedder

    def embed(texts: list[str]) -> Any:
        return Embedder(ctx.task.audit.embedding).encode(texts)  # raises BackendError: check_labels skips

    records = [Record("train", ex.id, ex.source, ex.input, ex.output) for ex in ctx.data.train]
    with status(ctx.progress, f"lora-curated: looking for label errors in {len(records)} train items"):
        found: LabelCheck = check_labels(ctx.task.labels or [], records, [], embed, seed=ctx.task.seed)
    if found.skipped:
        return {"skipped": found.skipped}  # not cached: adding data or the model changes it
    suspects = found.suspects["train"]
    out = {
        "method": METHOD,
        "checker": CHECKER,
        "checked": found.checked["train"],
        "eval_used": False,
        "left_out_labels": found.left_out,
        "oof_accuracy": found.oof_accuracy,
        "chosen_c": found.chosen_c,
        "audit_seconds": found.seconds,
        "dropped_ids": [s.id for s in suspects],
        "suspects": [{"id": s.id, "where": s.where, "given": s.given, "suggested": s.suggested,
                      "score": round(s.score, 4)} for s in suspects],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)  # atomic: a second run never reads half a file
    return out


class LoraCuratedLever(LoraLever):
    """`lora` on train minus the suspected label errors the audit finds, priced with the curation."""

    name = "lora-curated"
    rung = 3  # lora's cost class: the same training, plus an audit that costs seconds
    options_model = LoraCuratedOptions
    plain_lever: ClassVar[str] = "lora"  # the lever this one is the cleaned-data version of (the verdict pairs them)

    def check_task(self, task: Any) -> str | None:
        return None if task.kind == "classification" else _not_classification(task.kind)

    def curation(self, ctx: LeverContext) -> dict[str, Any]:
        """The check's result on the run's train split; raises InputError where it cannot run."""
        refusal = self.check_task(ctx.task)
        if refusal:
            raise InputError(refusal, field="levers")
        found = _cached_audit(ctx)
        if found.get("skipped"):
            raise InputError(
                f"lora-curated cannot clean this train split: the label-error check did not run: {found['skipped']}. "
                "Training on everything would be lora under another name; use lora, or add train examples",
                file=ctx.task.path(ctx.task.data.train), field="levers")
        return found

    def prepare_on(self, ctx: LeverContext, options: BaseModel, subset: list[Example], *,
                   leaked: int = 0) -> Artifact:
        """lora's `prepare_on` on `subset` less the suspects found on the whole train split; the artifact
        gains the curation record and its price."""
        assert isinstance(options, LoraCuratedOptions)
        found = self.curation(ctx)
        suspects = set(found["dropped_ids"])
        kept = [ex for ex in subset if ex.id not in suspects]
        artifact = super().prepare_on(ctx, options, kept, leaked=leaked)
        return self._priced(ctx, options, artifact, found, [ex.id for ex in subset if ex.id in suspects])

    def version_data(self, ctx: LeverContext, options: BaseModel, state: Any, train: list[Example]) -> Any:
        """The curated training pairs, the ids dropped and the method: never the plain lora adapter's version."""
        pairs = [[render_messages(ctx.task, ex), answer_text(ctx.task, ex.output)] for ex in train]
        return [self.name, METHOD, sorted(self.curation(ctx)["dropped_ids"]), pairs]

    def _priced(self, ctx: LeverContext, options: LoraCuratedOptions, artifact: Artifact, found: dict[str, Any],
                dropped: list[str]) -> Artifact:
        costs = ctx.task.costs
        price = costs.gpu_hour_usd if artifact.info.get("device") == "cuda" else costs.cpu_hour_usd
        seconds = float(sum(found["audit_seconds"].values()))
        audit_usd = seconds / 3600 * price
        review_hours = len(dropped) * options.review_seconds_per_item / 3600  # the suspects this training drops
        review_usd = review_hours * costs.engineer_hour_usd
        reviewed = options.review_seconds_per_item > 0
        review = {
            "assumed": reviewed,
            "seconds_per_item": options.review_seconds_per_item,
            "items": len(dropped) if reviewed else 0,
            "hours": review_hours,
            "usd": review_usd,
            "basis": (f"{options.review_seconds_per_item:g} s per suspect (lever_options.lora-curated."
                      f"review_seconds_per_item) × engineer_hour_usd {costs.engineer_hour_usd:g}" if reviewed else
                      "no human review assumed: the suspects are dropped automatically, unreviewed "
                      "(set lever_options.lora-curated.review_seconds_per_item to price a person confirming them)"),
        }
        artifact.setup_seconds += seconds
        artifact.setup_usd += audit_usd + review_usd
        artifact.upkeep_usd_per_month += costs.retrain_per_month * audit_usd  # each retraining audits its data again
        by_id = {s["id"]: s for s in found["suspects"]}
        summary = (f"{len(dropped)} of {len(dropped) + artifact.info['n_train'] + artifact.info['n_val']} train "
                   f"items dropped as suspected label errors ({found['checked']} checked; {METHOD}); "
                   f"audit {seconds:.1f} s (${audit_usd:.4f}); " + review["basis"])
        if found["left_out_labels"]:  # their items are kept unchecked: say so, never imply they were cleaned
            summary += "; not checked, too few train examples: " + ", ".join(
                f"{lb} ({n})" for lb, n in found["left_out_labels"].items())
        artifact.info["curation"] = {
            "plain_lever": self.plain_lever,
            "method": found["method"],
            "checker": found["checker"],
            "checked": found["checked"],
            "eval_used": found["eval_used"],
            "dropped": len(dropped),
            "dropped_ids": dropped,
            "dropped_items": [by_id[i] for i in dropped],
            "left_out_labels": found["left_out_labels"],
            "oof_accuracy": found["oof_accuracy"],
            "audit_seconds": found["audit_seconds"],
            "audit_usd": audit_usd,
            "review": review,
            "summary": summary,
        }
        return artifact
