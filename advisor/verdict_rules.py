"""Each lever's state against the target, and the trivial baseline every lever must beat.

States (`target.rule`):
- lower_bound (default): meets when the one-sided lower confidence bound of the target
  metric is at or above the threshold; fails when the one-sided upper bound is below it;
  otherwise undecided, with the eval items that would settle it (advisor.stats.items_needed).
- point: meets when the point estimate is at or above the threshold (a quick look; its
  false "meets" rate near the threshold is far above 1 − confidence, see the tests).

The trivial baseline costs nothing to compute: the majority train label (classification),
the most common train answer (qa, generation) or the empty object (extraction), scored by
the same scorer on the same eval items. A lever not significantly better than it, paired
and one-sided at the task's confidence, is "no better than guessing".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from advisor.data import Dataset
from advisor.scoring import macro_f1, normalize_answer, score
from advisor.spec import Task
from advisor.stats import (
    bootstrap_statistic,
    items_needed,
    metric_interval,
    one_sided_bounds,
    paired_difference,
    std_error,
)

RULES = ("lower_bound", "point")


def lever_state(value: float, lower: float, upper: float, threshold: float, rule: str) -> str:
    """"meets", "fails" or "undecided" from the point estimate and one-sided bounds.

    Raises ValueError for a rule outside RULES.
    """
    if rule not in RULES:
        raise ValueError(f"target.rule must be one of {', '.join(RULES)}, got {rule!r}")
    if (lower if rule == "lower_bound" else value) >= threshold:
        return "meets"
    return "fails" if upper < threshold else "undecided"


def assess(values: Sequence[float] | None, threshold: float, confidence: float, rule: str, *,
           groups: Sequence[Any] | None = None, set_statistic: Callable[[np.ndarray], float] | None = None,
           n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """State, one-sided bounds and items needed for one lever.

    `values`: per-item scores of the target metric (item-mean metrics). For a set-level
    metric (macro-F1) pass `set_statistic(indices) -> float` and `n` instead; its bounds
    come from a bootstrap and its standard error from the bootstrap's spread.
    Returns {"state", "lower_bound", "upper_bound", "items_needed", "value"}; items_needed is
    the number of additional eval items (None unless undecided or when no size settles it).
    """
    if values is not None:
        x = np.asarray(values, dtype=float)
        n = int(x.size)
        value = float(x.mean())
        lower, upper = one_sided_bounds(x, confidence, groups=groups, seed=seed)
        se = std_error(x, groups)
    elif set_statistic is not None and n:
        iv = bootstrap_statistic(n, set_statistic, 2 * confidence - 1, seed=seed)
        value, lower, upper = iv.value, iv.low, iv.high
        se = (upper - lower) / (2 * sps.norm.ppf(confidence))
    else:
        raise ValueError("assess needs per-item values, or a set statistic with n")
    state = lever_state(value, lower, upper, threshold, rule)
    need = None
    if state == "undecided":
        total = items_needed(value, threshold, se, n, confidence)
        need = None if total is None else max(total - n, 1)
    return {"value": value, "state": state, "lower_bound": lower, "upper_bound": upper, "items_needed": need}


def baseline_answer(task: Task, data: Dataset) -> tuple[str, Any]:
    """(name, answer) of the trivial baseline: what a guesser who saw only train would say."""
    if task.kind == "classification":
        counts = Counter(ex.output for ex in data.train)
        labels = task.labels or []
        # Ties go to the label listed first in the task, so the answer does not depend on file order.
        return "majority-label", max(labels, key=lambda lab: (counts.get(lab, 0), -labels.index(lab)))
    if task.kind == "extraction":
        return "empty-object", {}
    counts = Counter(normalize_answer(ex.output) for ex in data.train)
    if not counts:
        return "most-common-answer", ""
    top = counts.most_common(1)[0][0]
    return "most-common-answer", next(ex.output for ex in data.train if normalize_answer(ex.output) == top)


def trivial_baseline(task: Task, data: Dataset, groups: Sequence[Any] | None = None) -> dict[str, Any]:
    """The baseline row of results.json: {"name", "answer", "metrics", "per_item"}; per_item is
    metric -> per-item scores (not written to results.json; used for paired comparisons)."""
    name, answer = baseline_answer(task, data)
    golds = [ex.output for ex in data.eval]
    preds = [answer] * len(golds)
    scores = score(task, golds, preds)
    conf = task.target.confidence
    metrics = {m: metric_interval(v, conf, groups=groups, seed=task.seed).as_dict() for m, v in scores.per_item.items()}
    for m, v in scores.aggregate.items():
        metrics.setdefault(m, {"value": v, "ci_low": v, "ci_high": v})
    return {"name": name, "answer": answer, "metrics": metrics, "per_item": scores.per_item,
            "golds": golds, "preds": preds}


def better_than_baseline(task: Task, lever_per_item: dict[str, list[float]], lever_preds: list[Any],
                         baseline: dict[str, Any], groups: Sequence[Any] | None = None) -> bool:
    """Whether a lever is significantly better than the baseline on the target metric:
    the one-sided lower bound (task confidence) of the paired difference is above zero."""
    metric, conf = task.target.metric, task.target.confidence
    if metric in lever_per_item:
        d = paired_difference(lever_per_item[metric], baseline["per_item"][metric], 2 * conf - 1,
                              groups=groups, seed=task.seed)
        return d.low > 0
    labels, golds, base = task.labels or [], baseline["golds"], baseline["preds"]

    def gap(idx: np.ndarray) -> float:  # macro-F1 of the lever minus the baseline's, on the same items
        g = [golds[i] for i in idx]
        return macro_f1(g, [lever_preds[i] for i in idx], labels) - macro_f1(g, [base[i] for i in idx], labels)

    return bootstrap_statistic(len(golds), gap, 2 * conf - 1, seed=task.seed).low > 0


def eval_groups(data: Dataset) -> list[Any] | None:
    """The optional `group` field of eval examples (items about one passage), or None when absent."""
    groups = [ex.fields.get("group") for ex in data.eval]
    if all(g is None for g in groups):
        return None
    # An item without a group is its own group.
    return [g if g is not None else f"\x00{ex.id}" for g, ex in zip(groups, data.eval)]


def judge_run(task: Task, data: Dataset, results: list[Any], curves: dict[str, Any] | None = None) -> tuple[Any, dict]:
    """Assess every lever of a run, compute the baseline and decide.

    `results` are runner LeverResults (name, rung, scores, predictions, as_dict); each gets
    its state, bounds, items_needed, family and no_better_than_baseline in `verdict_fields`,
    and `meets_target` follows its state. Returns (Verdict, results.json "baseline" row).
    """
    from advisor.recommend import recommend
    from advisor.registry import lever_family

    t = task.target
    groups = eval_groups(data)
    baseline = trivial_baseline(task, data, groups)
    golds = [ex.output for ex in data.eval]
    per_item: dict[str, list[float]] = {}
    for r in results:
        values = r.scores.per_item.get(t.metric)
        preds = [p.output for p in r.predictions]
        if values is not None:
            per_item[r.name] = values
            found = assess(values, t.threshold, t.confidence, t.rule, groups=groups, seed=task.seed)
        else:  # macro-F1: a set statistic

            def f1(idx: np.ndarray, preds: list[Any] = preds, labels: list[str] = task.labels or []) -> float:
                return macro_f1([golds[i] for i in idx], [preds[i] for i in idx], labels)

            found = assess(None, t.threshold, t.confidence, t.rule, set_statistic=f1, n=len(golds), seed=task.seed)
        guessing = not better_than_baseline(task, r.scores.per_item, preds, baseline, groups)
        r.verdict_fields = {"state": found["state"], "items_needed": found["items_needed"],
                            "lower_bound": found["lower_bound"], "upper_bound": found["upper_bound"],
                            "no_better_than_baseline": guessing, "family": lever_family(r)}
        r.meets_target = found["state"] == "meets"
    entries = [r.as_dict(t.confidence) for r in results]
    verdict = recommend(entries, t.metric, t.threshold, has_knowledge=task.data.knowledge is not None,
                        curves=curves, rule=t.rule, margin=t.margin, confidence=t.confidence,
                        per_item=per_item if len(per_item) == len(results) else None, groups=groups, seed=task.seed)
    row = {k: baseline[k] for k in ("name", "answer", "metrics")}
    return verdict, row
