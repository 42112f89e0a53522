"""How far a judge's pass/fail grades agree with people's on the same items, chance corrected.

    a = agreement(human, judge, confidence=0.95, min_kappa=0.6)
    a.kappa, a.kappa_low, a.kappa_high   # Cohen's kappa with a percentile bootstrap interval
    a.tpr, a.fpr                         # judge passes among human passes / among human fails
    a.constant_share                     # what always answering the commoner human grade agrees on
    a.state                              # "trusted" | "refused" | "unsettled" against min_kappa
    a.more_grades                        # human grades to add until the interval clears min_kappa

Cohen's kappa (Cohen 1960) from statsmodels (`statsmodels.stats.inter_rater.cohens_kappa`); its
interval a seeded percentile bootstrap over items (`advisor.stats.bootstrap_statistic`, scipy), since
the asymptotic variance is poor on the few dozen grades a person gives. Raw agreement is reported
beside it, never instead: a judge that passes everything agrees with people on every pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advisor.stats import bootstrap_statistic

# Landis & Koch (1977) call 0.61-0.80 "substantial" agreement; below it, a criterion's judge grades
# are not used to decide (judge.min_kappa, a task setting, overrides it).
DEFAULT_MIN_KAPPA = 0.6


def cohen_kappa(human: np.ndarray, judge: np.ndarray) -> float:
    """Cohen's kappa of two 0/1 gradings of the same items (statsmodels). 1.0 when both are constant
    and equal; 0.0 when chance agreement is 1 but they differ somewhere (kappa is undefined there)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    h, j = np.asarray(human, dtype=int), np.asarray(judge, dtype=int)
    table = np.zeros((2, 2))
    np.add.at(table, (h, j), 1)
    expected = (table.sum(1) @ table.sum(0)) / table.sum() ** 2
    if math.isclose(expected, 1.0):
        return 1.0 if (h == j).all() else 0.0
    return float(cohens_kappa(table, return_results=False))


@dataclass(frozen=True)
class Agreement:
    """Judge against human on n items graded by both (module docstring). Rates in [0, 1]; `tpr` or
    `fpr` is None when people passed (or failed) no item; `more_grades`: None when settled."""

    n: int
    kappa: float
    kappa_low: float
    kappa_high: float
    raw: float
    tpr: float | None
    fpr: float | None
    constant_share: float
    min_kappa: float
    confidence: float
    state: str
    more_grades: int | None

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def agreement(human: Sequence[float], judge: Sequence[float], *, confidence: float = 0.95,
              min_kappa: float = DEFAULT_MIN_KAPPA, n_boot: int = 2000, seed: int = 0) -> Agreement:
    """Agreement of `judge` with `human` (shape (n,) each, 1 pass / 0 fail, the same items in order).

    `state`: "trusted" when the interval's lower end is at or above `min_kappa`, "refused" when its
    upper end is below it, else "unsettled"; `more_grades`: for "unsettled", the human grades to add
    until the interval (its half-width shrinking as 1/sqrt(n)) would clear `min_kappa` on one side at
    today's kappa, an estimate; None otherwise.

    Raises ValueError on fewer than 2 items, lengths that differ, or grades other than 0 and 1.
    """
    h, j = np.asarray(human, dtype=float), np.asarray(judge, dtype=float)
    if h.shape != j.shape or h.ndim != 1:
        raise ValueError(f"human and judge grades must be 1-D and of one length, got {h.shape} and {j.shape}")
    if len(h) < 2:
        raise ValueError(f"need at least 2 items graded by both, got {len(h)}")
    if not set(np.unique(np.concatenate([h, j]))) <= {0.0, 1.0}:
        raise ValueError("grades must be 0 (fail) or 1 (pass)")
    n = len(h)
    interval = bootstrap_statistic(n, lambda idx: cohen_kappa(h[idx], j[idx]), confidence, n_boot, seed)
    kappa = cohen_kappa(h, j)
    low, high = interval.low, interval.high
    passes, fails = h == 1, h == 0
    tpr = float(j[passes].mean()) if passes.any() else None
    fpr = float(j[fails].mean()) if fails.any() else None
    state = "trusted" if low >= min_kappa else "refused" if high < min_kappa else "unsettled"
    more = None
    if state == "unsettled":
        gap = abs(kappa - min_kappa)
        half = (high - low) / 2
        # Half-widths shrink as 1/sqrt(n): the n at which today's half-width would reach the gap.
        more = max(1, math.ceil(n * (half / gap) ** 2) - n) if gap > 1e-9 else None
    return Agreement(n=n, kappa=kappa, kappa_low=low, kappa_high=high, raw=float((h == j).mean()), tpr=tpr,
                     fpr=fpr, constant_share=float(max(h.mean(), 1 - h.mean())), min_kappa=min_kappa,
                     confidence=confidence, state=state, more_grades=more)
