"""Choosing between prompt candidates on a dev split carved from train, and what answers cost.

Shared by the levers that pick a wording, a set of demonstrations or a searched prompt before eval
is scored: `prompt`, `prompt-few-shot` (baselines/prompt.py) and `prompt-search`
(baselines/prompt_search.py). `cost_of` also prices the runner's ranking-method probes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.errors import AdviseError
from advisor.scoring import score
from advisor.spec import METRICS
from advisor.types import Artifact, Example, LeverContext, Prediction, Request


@dataclass
class DevChoice:
    """What scoring prompt candidates on the dev split found, and what it cost.

    `seconds` sums the compute seconds of every dev answer, stored ones included, so the
    setup cost a rerun reports is the search's real cost, not the zero a warm cache costs.
    """

    dev_items: int
    scores: dict[str, float]  # candidate name -> dev value of the target metric, in the order tried
    chosen: str
    seconds: float
    usd: float
    computed: int  # dev answers computed in this run (0 on a rerun)
    wall_seconds: float  # this run's wall time for the whole choice
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, eval_metrics: dict[str, float], metric: str) -> dict[str, Any]:
        """The choice beside the chosen candidate's eval score: the gap is how much dev flattered it."""
        dev = self.scores[self.chosen]
        ev = eval_metrics.get(metric)
        return {
            "metric": metric,
            "dev_items": self.dev_items,
            "dev_score": dev,
            "eval_score": ev,
            "dev_eval_gap": None if ev is None else dev - ev,
            "setup_seconds": self.seconds,
            "setup_usd": self.usd,
            "computed_dev_predictions": self.computed,
            "wall_seconds": self.wall_seconds,
        }


def cost_of(backend: Any, predictions: list[Prediction]) -> tuple[float, float]:
    """(compute seconds, USD) of these answers: seconds at the backend's price, plus its token price if any."""
    seconds = sum(p.seconds for p in predictions)
    tokens = backend.token_cost_usd(predictions)  # hosted backends price tokens
    # None: the model's token price is unknown. Its row's per-query price is then unknown too, so the
    # row is shown and ranked as "unknown"; setup counts only what is priced.
    return seconds, seconds * backend.price_per_second_usd() + (tokens or 0.0)


def choose_on_dev(ctx: LeverContext, lever: Any, candidates: dict[str, Artifact], dev: list[Example],
                  cheapness: dict[str, float] | None = None, default: str | None = None,
                  build: Callable[[Artifact], Callable[[list[Example]], list[Request]] | None] | None = None,
                  ) -> DevChoice:
    """Score each candidate artifact on `dev` through the runner's cached path; keep the best.

    With `default` (the task's own wording): that candidate is kept unless another beats it on
    the same dev items beyond noise (advisor.choice.choose_paired: exact McNemar, Holm-adjusted,
    at 1 - target.confidence; a paired bootstrap for macro-F1); the test is in `extra["test"]`.
    Without (a search over drawn candidates): the target metric decides; a tie is broken by
    the task kind's other metrics in their usual order (field F1 when no wording gets an
    address exactly right), then goes to the cheaper candidate (`cheapness`, lower is cheaper,
    e.g. shots shown), then to the one tried first. Eval is never looked at.
    Raises AdviseError outside a runner (no cached prediction path in `ctx`).
    """
    if ctx.predictor is None:
        raise AdviseError(f"{lever.name}: scoring prompt candidates needs the runner's prediction store")
    start = time.perf_counter()
    metric = ctx.task.target.metric
    golds = [ex.output for ex in dev]
    ranked = [metric, *(m for m in METRICS[ctx.task.kind] if m != metric)]
    scores: dict[str, float] = {}
    ties: dict[str, tuple[float, ...]] = {}
    per_item: dict[str, list[float]] = {}
    outputs: dict[str, list[Any]] = {}
    seconds = usd = 0.0
    computed = 0
    for i, (name, artifact) in enumerate(candidates.items()):
        what = f"dev {i + 1}/{len(candidates)} ({name})"
        preds, _, new = ctx.predictor.predict(lever, artifact, dev, what,
                                              build=build(artifact) if build is not None else None)
        outputs[name] = [p.output for p in preds]
        scored = score(ctx.task, golds, outputs[name], [p.raw for p in preds])
        scores[name] = scored.aggregate[metric]
        ties[name] = tuple(-scored.aggregate.get(m, 0.0) for m in ranked)
        if metric in scored.per_item:
            per_item[name] = scored.per_item[metric]
        s, u = cost_of(artifact.backend, preds)
        seconds, usd, computed = seconds + s, usd + u, computed + new
    order = list(candidates)
    cheap = cheapness or {}
    extra: dict[str, Any] = {"tie_break": ranked[1:], "dev_metrics": {n: [-x for x in t] for n, t in ties.items()}}
    if default is not None and len(order) > 1 and dev:
        from advisor.choice import choose_paired

        alpha = round(1 - ctx.task.target.confidence, 10)
        if len(per_item) == len(order):
            paired = choose_paired(default, per_item, metric=metric, alpha=alpha, seed=ctx.task.seed)
        else:  # macro-F1: a set statistic
            from advisor.scoring import set_statistic

            paired = choose_paired(default, metric=metric, alpha=alpha, seed=ctx.task.seed, n=len(dev),
                                   set_statistic={n: set_statistic(metric, golds, outputs[n], ctx.task.labels or [])
                                                  for n in order})
        chosen = paired.chosen
        extra["test"] = paired.as_dict()
    else:
        chosen = min(order, key=lambda n: (ties[n], cheap.get(n, 0.0), order.index(n)))
    return DevChoice(len(dev), scores, chosen, seconds, usd, computed, time.perf_counter() - start, extra=extra)
