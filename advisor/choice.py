"""Choices a run makes for itself on held-out train items, kept only when they beat the default beyond noise.

A run chooses some settings without the eval set: the label-ranking method of each lever row
(advisor/ranking.py), a prompt wording among the task's variants. Each choice starts from a
default (the row's natural ranking method, the task's own prompt) and moves to another
candidate only when a paired test on the same held-out items says the candidate is better:

- per-item metrics (accuracy, exact match, ...): the exact McNemar test on the items where the
  two disagree (`advisor.stats.mcnemar_exact`, scipy's binomial test), Holm-adjusted over the
  candidates tried (`statsmodels.stats.multitest.multipletests`, Holm 1979), at the task's
  `1 - target.confidence`; with non-binary scores a paired bootstrap instead;
- set-level metrics (macro-F1): a paired bootstrap of the difference (`advisor.stats.
  bootstrap_statistic`, scipy), Bonferroni over the candidates, one-sided at the same level.

Of the candidates that pass, the one with the best held-out value wins (ties: the order tried).
A one-item win on 40 dev items is never enough: with 40 items a candidate must win about 6
more discordant items than it loses before McNemar alone calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from statsmodels.stats.multitest import multipletests

from advisor.stats import bootstrap_statistic, mcnemar_exact, paired_difference

RULE_MCNEMAR = "exact McNemar, Holm-adjusted over the candidates"
RULE_BOOTSTRAP = "paired bootstrap of the difference, Bonferroni over the candidates"
RULE_TOO_FEW = "too few held-out items to test: the default kept"
# Below this many held-out items no paired test can say anything (the bootstrap needs two; a
# McNemar test on fewer than six discordant items cannot reach p < 0.05), so the default stands.
MIN_ITEMS = 6


@dataclass
class PairedChoice:
    """The outcome of `choose_paired`.

    `scores`: candidate -> held-out value of the metric (default included); `p_values`:
    candidate -> adjusted p-value against the default (McNemar) or None (bootstrap);
    `lower_bounds`: candidate -> one-sided lower bound of candidate - default (bootstrap rule,
    and McNemar's items when the scores are not 0/1); `wins`: candidate -> [items only it gets
    right, items only the default gets right] (binary per-item metrics only).
    """

    chosen: str
    default: str
    switched: bool
    n: int
    metric: str
    rule: str
    alpha: float
    scores: dict[str, float]
    p_values: dict[str, float | None] = field(default_factory=dict)
    lower_bounds: dict[str, float] = field(default_factory=dict)
    wins: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "default": self.default, "switched": self.switched, "n": self.n,
                "metric": self.metric, "rule": self.rule, "alpha": self.alpha, "scores": self.scores,
                "p_values": self.p_values, "lower_bounds": self.lower_bounds, "wins": self.wins,
                "wins_order": ["items only the candidate gets right", "items only the default gets right"]}


def _binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def choose_paired(default: str, per_item: Mapping[str, Sequence[float]] | None = None, *,
                  metric: str, alpha: float = 0.05, set_statistic: Mapping[str, Callable[[np.ndarray], float]]
                  | None = None, n: int | None = None, seed: int = 0) -> PairedChoice:
    """Keep `default` unless another candidate is better on the same items beyond noise.

    `per_item`: candidate -> per-item scores of `metric` on the held-out items, aligned (the
    default among them). For a set-level metric pass `set_statistic`: candidate -> f(indices) ->
    value, and `n` items instead. `alpha`: the family-wise error rate of switching when no
    candidate is better (1 - the task's confidence). Raises ValueError when `default` is not a
    candidate or neither input is given.
    """
    size = len(next(iter(per_item.values()))) if per_item else (n or 0)
    candidates = list(per_item or set_statistic or {})
    if (per_item is not None or set_statistic is not None) and size < MIN_ITEMS and default in candidates:
        # Too few items to test anything (a bootstrap needs two): the default stands, and says why.
        every = np.arange(size)
        scores = ({c: float(np.mean(v)) if size else 0.0 for c, v in per_item.items()} if per_item is not None
                  else {c: float(f(every)) if size else 0.0 for c, f in (set_statistic or {}).items()})
        return PairedChoice(default, default, False, size, metric, RULE_TOO_FEW, alpha, scores)
    if per_item is not None:
        if default not in per_item:
            raise ValueError(f"the default {default!r} should be among the candidates, got {sorted(per_item)}")
        n = len(per_item[default])
        scores = {c: float(np.mean(v)) if n else 0.0 for c, v in per_item.items()}
        others = [c for c in per_item if c != default]
        base = per_item[default]
        if n and all(_binary(per_item[c]) for c in per_item):
            raw = [mcnemar_exact(per_item[c], base) for c in others]
            adjusted = list(multipletests(raw, alpha=alpha, method="holm")[1]) if raw else []
            p_values: dict[str, float | None] = {c: float(p) for c, p in zip(others, adjusted)}
            wins = {c: [int(np.sum((np.asarray(per_item[c]) == 1) & (np.asarray(base) == 0))),
                        int(np.sum((np.asarray(per_item[c]) == 0) & (np.asarray(base) == 1)))] for c in others}
            better = [c for c in others if p_values[c] is not None and p_values[c] < alpha  # type: ignore[operator]
                      and wins[c][0] > wins[c][1]]
            rule, lower = RULE_MCNEMAR, {}
        else:
            k = max(len(others), 1)
            lower = {c: paired_difference(per_item[c], base, 1 - 2 * alpha / k, seed=seed).low for c in others}
            better = [c for c in others if lower[c] > 0]
            p_values, wins, rule = {c: None for c in others}, {}, RULE_BOOTSTRAP
    elif set_statistic is not None and n:
        if default not in set_statistic:
            raise ValueError(f"the default {default!r} should be among the candidates, got {sorted(set_statistic)}")
        everything = np.arange(n)
        scores = {c: float(f(everything)) for c, f in set_statistic.items()}
        others = [c for c in set_statistic if c != default]
        k = max(len(others), 1)
        base_f = set_statistic[default]
        lower = {}
        for c in others:
            f = set_statistic[c]
            lower[c] = bootstrap_statistic(n, lambda idx, f=f: f(idx) - base_f(idx), 1 - 2 * alpha / k,
                                           seed=seed).low
        better = [c for c in others if lower[c] > 0]
        p_values, wins, rule = {c: None for c in others}, {}, RULE_BOOTSTRAP
    else:
        raise ValueError("choose_paired needs per-item scores, or set statistics with n")
    order = [default, *others]
    chosen = max(better, key=lambda c: (scores[c], -order.index(c))) if better else default
    return PairedChoice(chosen, default, chosen != default, int(n or 0), metric, rule, alpha, scores,
                        p_values, lower, wins)
