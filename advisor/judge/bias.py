"""Bias probes on a judge's grades: does it reward length?

    probe = length_probe({"prompt": (words, grades), "rag": (words, grades)}, criterion="owns_problem")
    probe["levers"]["rag"]["by_tercile"]   # pass rate in each length tercile (pooled cut points)
    probe["levers"]["rag"]["r"], ["p"]     # point-biserial correlation of length (words) and the grade
    probe["flags"]                         # sentences: a longer row's advantage that length bins take away

LLM judges are known to prefer longer answers (verbosity bias: Zheng et al. 2023, "Judging
LLM-as-a-judge with MT-Bench and Chatbot Arena"; Dubois et al. 2024, length-controlled AlpacaEval).
The probe cannot tell a judge's bias from longer outputs that really are better; it shows where a
row's lead over a shorter row lives: if within each length tercile the two rows pass at about the same
rate, the lead is the length, and people should look before it decides anything.

Terciles: cut points at the 1/3 and 2/3 quantiles of every graded output's length in words (all rows
pooled, so the bins are the same for every row). The within-bin difference of two rows is the mean of
their per-tercile rate differences over the terciles where both have a scored output, weighted by the
smaller count. A longer row's lead (its mean length above the other's and its rate higher) is flagged
when that within-bin difference is at most half its overall lead. Point-biserial r: scipy.stats.pointbiserialr
over scored items (None with fewer than 3, or constant length or grade).

Pairwise both-orders flip rates (position bias) need a pairwise grading mode, which the rubric does not
have: not probed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def words(text: str) -> int:
    """Length of an output in words (whitespace-separated)."""
    return len(str(text).split())


def _r(lengths: np.ndarray, grades: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import pointbiserialr

    if len(grades) < 3 or len(set(grades.tolist())) < 2 or len(set(lengths.tolist())) < 2:
        return None, None
    res = pointbiserialr(grades, lengths)
    return float(res.statistic), float(res.pvalue)


def length_probe(rows: Mapping[str, tuple[Sequence[int], Sequence[float | None]]], criterion: str) -> dict[str, Any]:
    """Pass rate against output length for one criterion over every row (module docstring).

    `rows`: row name -> (lengths in words, grades 1.0/0.0/None), one per eval item. Returns {criterion,
    cuts (the two tercile cut points, words), levers: name -> {mean_words, rate, by_tercile (3 rates or
    None), n_by_tercile, r, p}, flags: [sentences]}. Unscored grades are left out."""
    scored = {name: (np.asarray([w for w, g in zip(ws, gs) if g is not None], dtype=float),
                     np.asarray([g for g in gs if g is not None], dtype=float)) for name, (ws, gs) in rows.items()}
    pooled = np.concatenate([w for w, _ in scored.values()]) if scored else np.array([])
    out: dict[str, Any] = {"criterion": criterion, "cuts": None, "levers": {}, "flags": []}
    if len(pooled) < 3:
        return out
    cuts = np.quantile(pooled, [1 / 3, 2 / 3])
    out["cuts"] = [float(c) for c in cuts]
    bins = {}
    for name, (w, g) in scored.items():
        b = np.digitize(w, cuts, right=True)  # 0: <= first cut, 1: middle, 2: above the second
        rates = [float(g[b == k].mean()) if (b == k).any() else None for k in range(3)]
        counts = [int((b == k).sum()) for k in range(3)]
        bins[name] = (rates, counts)
        r, p = _r(w, g)
        out["levers"][name] = {"mean_words": float(w.mean()) if len(w) else None,
                               "rate": float(g.mean()) if len(g) else None, "by_tercile": rates,
                               "n_by_tercile": counts, "r": r, "p": p}
    names = [n for n in out["levers"] if out["levers"][n]["rate"] is not None]
    for long in names:
        for short in names:
            a, b = out["levers"][long], out["levers"][short]
            lead = a["rate"] - b["rate"]
            if long == short or a["mean_words"] <= b["mean_words"] or lead <= 0:
                continue
            (ra, ca), (rb, cb) = bins[long], bins[short]
            both = [(ra[k] - rb[k], min(ca[k], cb[k])) for k in range(3) if ra[k] is not None and rb[k] is not None]
            if not both:
                continue
            weight = sum(wt for _, wt in both)
            within = sum(d * wt for d, wt in both) / weight
            if within <= lead / 2:
                out["flags"].append(
                    f"{criterion}: {long} passes {a['rate']:.2f} against {short}'s {b['rate']:.2f} with outputs "
                    f"{a['mean_words']:.0f} words long against {b['mean_words']:.0f}, but within length terciles the "
                    f"lead is {within:+.2f}: the judge may be rewarding length; have people grade a sample of both "
                    "before trusting the lead")
    return out


__all__ = ["length_probe", "words"]
