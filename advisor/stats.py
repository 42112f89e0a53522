"""Bootstrap intervals over eval items.

The verdict rests on these, so they are seeded (same data, same interval) and
use percentile intervals, which need no normality assumption.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of per-item scores.

    >>> iv = bootstrap_interval([1.0] * 8 + [0.0] * 2)
    >>> iv.value, iv.low <= 0.8 <= iv.high
    (0.8, True)
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no items to bootstrap")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), confidence)


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], float],
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of any statistic of a set of items (e.g. macro-F1).

    `statistic(indices)` computes the figure on the items at `indices`.
    """
    rng = np.random.default_rng(seed)
    full = float(statistic(np.arange(n)))
    draws = [statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Interval(full, float(low), float(high), confidence)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0
