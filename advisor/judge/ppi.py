"""Prediction-powered intervals on a human-graded pass rate: a few human grades plus a judge's grades
on every item give an interval that is valid however biased the judge is, and narrower than the
human grades alone when the judge agrees with people.

    est = ppi_mean(human, judge_on_human, judge_on_rest, confidence=0.95)
    est.value, est.ci_low, est.ci_high    # two-sided interval on the rate people would give
    est.lower_bound, est.upper_bound      # one-sided bounds at the same confidence (the verdict's rule)
    est.effective_n                       # how many human grades the n human + N judge grades are worth

Method: PPI++ for a mean (Angelopoulos, Duchi & Zrnic, "PPI++: Efficient Prediction-Powered
Inference", 2023, arXiv:2311.01453; PPI: Angelopoulos et al., Science 2023). With n human grades Y,
the judge's grades f on the same items and its grades f~ on N other items,

    theta = lam * mean(f~) + mean(Y - lam * f),
    se^2  = lam^2 * var(f~) / N + var(Y - lam * f) / n,
    lam   = cov(Y, f) / ((1 + n / N) * var(f and f~ pooled)), clipped to [0, 1]

(lam = 0 is the human-only mean, lam = 1 plain PPI). A normal interval around theta.

Written here rather than imported: the mean case is these few lines, and the reference package
(`ppi-python`, MIT) pulls numba and installs a top-level `tests` package that shadows this
project's; tests/test_judge_stats.py checks this code against it, installed apart.

One change from the published interval, measured, for binary grades only (`small_sample=True`, the
default): the rectifier's variance var(Y - lam * f) is computed with half a pseudo-observation in
each of the four (human, judge) cells, as Agresti and Caffo (2000) and Agresti and Min (2005) do
for differences of proportions. Without it, a judge that agrees with people on all but a few items
often shows zero disagreements in a sample of 50, the rectifier's variance is 0 and the interval is
far too narrow: on the VADER tweets (4,200 texts, 20 human ratings each; the lexicon agreeing with
the human sign on 96%), 50 human grades, 2,000 draws, the published interval covered the true rate
77% of the time at 95%; with the pseudo-counts 97% (width 0.128 against 0.247 for the human grades
alone). On the Amazon, movie and NYT snippets coverage moved from 0.935-0.938 to 0.938-0.941.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from advisor.stats import metric_interval

PSEUDO_COUNT = 0.5  # per (human, judge) cell, for the rectifier's variance only (see the module docstring)


@dataclass(frozen=True)
class PPIEstimate:
    """A prediction-powered estimate of a mean (a pass rate, in [0, 1] for binary grades).

    `value`: the point estimate; `ci_low`/`ci_high`: the two-sided interval at `confidence`;
    `lower_bound`/`upper_bound`: one-sided bounds at `confidence` each (z at `confidence`, not at
    (1 + confidence) / 2); `lam`: the power-tuning weight used (0 = human grades only);
    `n_human`, `n_judge`: grades of each kind; `effective_n`: the number of human grades alone that
    would give the same standard error (var(Y) / se^2, about `n_human` when the judge adds nothing);
    `human_only`: the (low, high) interval of the human grades alone (`advisor.stats.metric_interval`:
    Wilson for 0/1 grades), for comparison.
    """

    value: float
    ci_low: float
    ci_high: float
    lower_bound: float
    upper_bound: float
    confidence: float
    lam: float
    se: float
    n_human: int
    n_judge: int
    effective_n: float
    human_only: tuple[float, float]

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low


def _variance(values: np.ndarray, pseudo: np.ndarray | None, weight: float) -> float:
    """Population variance of `values`, with `pseudo` values each weighing `weight` added."""
    if pseudo is None or weight == 0:
        return float(values.var())
    w = np.concatenate([np.ones(len(values)), np.full(len(pseudo), weight)])
    v = np.concatenate([values, pseudo])
    m = float((w * v).sum() / w.sum())
    return float((w * (v - m) ** 2).sum() / w.sum())


def power_tuning_lambda(human: np.ndarray, judge_on_human: np.ndarray, judge_on_rest: np.ndarray) -> float:
    """PPI++'s variance-minimising weight on the judge, clipped to [0, 1] (0 when the judge's grades
    do not vary)."""
    n, big_n = len(human), len(judge_on_rest)
    cov = float(((human - human.mean()) * (judge_on_human - judge_on_human.mean())).mean())
    var = float(np.var(np.concatenate([judge_on_human, judge_on_rest]), ddof=1))
    if var <= 0:
        return 0.0
    return float(np.clip(cov / ((1 + n / big_n) * var), 0.0, 1.0))


def ppi_mean(human: np.ndarray, judge_on_human: np.ndarray, judge_on_rest: np.ndarray, *,
             confidence: float = 0.95, lam: float | None = None, small_sample: bool = True) -> PPIEstimate:
    """The PPI++ estimate of the mean human grade over all items (module docstring).

    `human`, `judge_on_human`: shape (n,), the same n items graded by people and by the judge;
    `judge_on_rest`: shape (N,), the judge's grades on items people did not grade. Grades are
    numbers (1.0 pass, 0.0 fail for a criterion). `lam`: a fixed weight (None: power-tuned).
    `small_sample`: the pseudo-count correction for binary grades (ignored when grades are not 0/1).

    Raises ValueError when n < 2, N < 1, or the first two arrays differ in length.
    """
    y = np.asarray(human, dtype=float)
    f = np.asarray(judge_on_human, dtype=float)
    fu = np.asarray(judge_on_rest, dtype=float)
    if y.shape != f.shape or y.ndim != 1:
        raise ValueError(f"human and judge_on_human must be 1-D and of one length, got {y.shape} and {f.shape}")
    if len(y) < 2 or len(fu) < 1:
        raise ValueError(f"need at least 2 human grades and 1 judge-only grade, got {len(y)} and {len(fu)}")
    n, big_n = len(y), len(fu)
    weight = power_tuning_lambda(y, f, fu) if lam is None else float(lam)
    value = weight * float(fu.mean()) + float((y - weight * f).mean())
    binary = all(set(np.unique(a)) <= {0.0, 1.0} for a in (y, f, fu))
    pseudo = (np.array([yy - weight * ff for yy in (0.0, 1.0) for ff in (0.0, 1.0)])
              if small_sample and binary else None)
    rect_var = _variance(y - weight * f, pseudo, PSEUDO_COUNT)
    se = float(np.sqrt(weight ** 2 * fu.var() / big_n + rect_var / n))
    z2, z1 = norm.ppf(0.5 + confidence / 2), norm.ppf(confidence)
    human = metric_interval(y, confidence)  # what the project reports for the human grades alone (Wilson for 0/1)
    effective = float(y.var()) / se ** 2 if se > 0 else float("inf")
    return PPIEstimate(
        value=value, ci_low=value - z2 * se, ci_high=value + z2 * se,
        lower_bound=value - z1 * se, upper_bound=value + z1 * se, confidence=confidence, lam=weight, se=se,
        n_human=n, n_judge=big_n, effective_n=float(effective),
        human_only=(human.low, human.high),
    )
