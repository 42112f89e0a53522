"""Learning curves: a lever's target metric against its train-set size, a fit, and what the target needs.

    curve = measure_curve(lever, ctx, options, (0.25, 0.5, 1.0), score=lambda artifact: accuracy_of(artifact))
    curve.n_needed, curve.message        # e.g. 1,600 examples; or "flat: more data of this kind won't help"

This module drives the measurement: it draws the nested train subsets, asks the lever to train on
each (`prepare_on`: what a lever offers for a curve, with `record_metrics` to keep each point's
score beside its artifact; see `TrainsOnSubsets`), scores each artifact through the `score`
callable it is given (the runner's cached, shared scorer; this module imports no runner), and fits
metric(n). results.json `learning_curves[row]` is `LearningCurve.as_dict()`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from advisor.data import remove_leakage
from advisor.types import Artifact, Example, Lever, LeverContext

DEFAULT_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)


@runtime_checkable
class TrainsOnSubsets(Protocol):
    """What a lever offers for a learning curve (the LoRA levers): train on a given subset of the
    train split, and keep an artifact's scores beside it (`advise adapters` shows them)."""

    name: str
    options_model: type[BaseModel]

    def prepare_on(self, ctx: LeverContext, options: BaseModel, subset: list[Example]) -> Artifact: ...

    def record_metrics(self, ctx: LeverContext, artifact: Artifact, metrics: dict[str, float]) -> None: ...


def has_curve(lever: Lever) -> bool:
    """Whether `measure_curve` can measure `lever`'s learning curve: it declares `prepare_on` (trains
    on a given subset; advisor.types.Lever declares it None for levers that cannot)."""
    return isinstance(lever, Lever) and lever.prepare_on is not None


@dataclass
class CurvePoint:
    fraction: float
    n_train: int
    metric: float
    adapter: str
    train_seconds: float


@dataclass
class LearningCurve:
    """Metric against train-set size, the fitted curve, and what reaching the target would take."""

    metric: str
    threshold: float
    points: list[CurvePoint]
    model: str  # "power" (metric = a - b * n^-c), "log-linear" (a + b * ln n) or "flat"
    params: dict[str, float]
    flat: bool
    n_needed: int | None  # train examples the fit says reach the threshold; None: not reachable
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, n: float) -> float:
        p = self.params
        if self.model == "power":
            return p["a"] - p["b"] * n ** -p["c"]
        if self.model == "log-linear":
            return p["a"] + p["b"] * math.log(n)
        return p.get("a", float("nan"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def curve_subsets(train: list[Example], fractions: Sequence[float], seed: int = 0) -> list[tuple[float, list[Example]]]:
    """(fraction, subset) per distinct fraction, smallest first; subsets are nested.

    A seeded draw order decides which examples a fraction keeps, so a larger subset holds every
    smaller one; each subset keeps the file order, so the fraction 1.0 is `train` itself (the
    training data `prepare` used: its adapter is reused). Each subset has at least one example.
    """
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"`fractions` should lie in (0, 1], got {tuple(fractions)}.")
    order = random.Random(seed).sample(range(len(train)), len(train))
    rank = {i: r for r, i in enumerate(order)}
    out = []
    for f in sorted(set(fractions)):
        size = max(1, round(f * len(train)))
        out.append((f, [ex for i, ex in enumerate(train) if rank[i] < size]))
    return out


def measure_curve(
    lever: TrainsOnSubsets,
    ctx: LeverContext,
    options: BaseModel | dict[str, Any],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    score: Callable[[Artifact], float] | None = None,
) -> LearningCurve:
    """Train `lever` at fractions of the train split, score each, fit metric(n), say what the target needs.

    `ctx`: the lever row's context (its model: a `lever@alias` row trains on that alias's model).
    `score(artifact) -> float`: the task's target metric of an artifact on the eval split, through
    the shared scorer. The subsets come from the train split less any eval input (`curve_subsets`,
    seeded by the options' `seed`); each point's score is also recorded beside its artifact.
    """
    if score is None:
        raise ValueError("`score` should score an artifact on the eval split, got None.")
    if not isinstance(options, lever.options_model):
        options = lever.options_model.model_validate(options)
    data, target = ctx.data, ctx.task.target
    train, _ = remove_leakage(data.train, data.eval)
    points = []
    for f, subset in curve_subsets(train, fractions, seed=int(getattr(options, "seed", 0))):
        artifact = lever.prepare_on(ctx, options, subset)
        value = float(score(artifact))
        lever.record_metrics(ctx, artifact, {target.metric: value})
        points.append(CurvePoint(f, len(subset), value, str(artifact.info.get("adapter", artifact.identity)),
                                 artifact.setup_seconds))
        del artifact  # one trained model at a time
    fit = fit_curve([p.n_train for p in points], [p.metric for p in points], target.threshold, len(data.eval))
    return LearningCurve(metric=target.metric, threshold=target.threshold, points=points, **fit)


def fit_curve(
    ns: list[int], metrics: list[float], threshold: float, n_eval: int | None = None, flat_tol: float = 0.01
) -> dict[str, Any]:
    """Fit metric(n); return model, params, flat, n_needed and a one-line message.

    Flat when the metric rises by less than the eval set's noise (one binomial standard error
    at `n_eval` items, at least `flat_tol`) or falls. Otherwise a power law a - b n^-c (b > 0,
    a <= 1; c on a grid, a and b by least squares) when there are 3 or more sizes, else or
    when no power law fits, log-linear a + b ln n.
    """
    import numpy as np

    order = np.argsort(ns)
    n = np.asarray(ns, dtype=float)[order]
    y = np.asarray(metrics, dtype=float)[order]
    have = int(n[-1])

    def result(model: str, params: dict[str, float], needed: int | None, message: str) -> dict[str, Any]:
        return {
            "model": model,
            "params": params,
            "flat": model == "flat",
            "n_needed": needed,
            "message": message,
        }

    if y[-1] >= threshold:
        hit = int(min(k for k, v in zip(n, y) if v >= threshold))
        return result(
            "log-linear", _loglinear(n, y), hit, f"the target is met already with {hit} train examples"
        )
    p = float(np.clip(y[-1], 0.0, 1.0))
    noise = max(flat_tol, math.sqrt(p * (1 - p) / n_eval) if n_eval else 0.0)
    rise = float(y[-1] - y[0])
    if len(n) < 2 or rise < noise or _loglinear(n, y)["b"] <= 0:
        return result(
            "flat",
            {"a": float(y.mean())},
            None,
            f"the curve is flat ({y[0]:.3f} -> {y[-1]:.3f} from {int(n[0])} to {have} examples, within the "
            f"eval noise of +-{noise:.3f}): more examples of this kind are unlikely to reach the target; "
            "change the prompt, the data or the model",
        )
    fit = None
    for c in np.geomspace(0.05, 3.0, 120) if len(n) >= 3 else ():
        X = np.stack([np.ones_like(n), -(n**-c)], axis=1)
        (a, b), *_ = np.linalg.lstsq(X, y, rcond=None)
        if b <= 0 or a > 1.0:
            continue
        sse = float(((X @ np.array([a, b]) - y) ** 2).sum())
        if fit is None or sse < fit[0]:
            fit = (sse, float(a), float(b), float(c))
    if fit is not None:
        _, a, b, c = fit
        params = {"a": a, "b": b, "c": c}
        if a <= threshold:
            return result(
                "power",
                params,
                None,
                f"the fitted curve levels off at {a:.3f}, below the target {threshold}: "
                "more data of this kind is unlikely to reach it",
            )
        needed = math.ceil((b / (a - threshold)) ** (1 / c))
        return result("power", params, needed, _needed_message(needed, have))
    params = _loglinear(n, y)
    needed = math.ceil(math.exp(min((threshold - params["a"]) / params["b"], 700.0)))
    return result("log-linear", params, needed, _needed_message(needed, have))


def _loglinear(n: Any, y: Any) -> dict[str, float]:
    import numpy as np

    if len(n) < 2:
        return {"a": float(y[0]), "b": 0.0}
    b, a = np.polyfit(np.log(n), y, 1)
    return {"a": float(a), "b": float(b)}


def _needed_message(needed: int, have: int) -> str:
    times = needed / max(have, 1)
    if times > 100:
        return f"the fit says about {needed:,} train examples ({times:,.0f}x today's): out of reach"
    return f"the fit says about {needed:,} train examples reach the target ({times:.1f}x today's {have})"
