"""A rubric criterion as the target metric: what the verdict may conclude from a judge's grades.

    ev = criterion_evidence("owns_problem", grades, human, confidence=0.95, min_kappa=0.6)
    state, lower, upper, basis = assess_criterion(ev, threshold=0.8, rule="lower_bound")

`grades`: example_id -> the judge's grade of this lever's output (1.0 pass, 0.0 fail, None unscored);
`human`: example_id -> a person's grade of the same output (labels.jsonl, matched by output hash).

The evidence the bounds come from, in this order:

1. Agreement *refused* (Cohen's kappa's interval, Cohen 1960, wholly below `rubric.min_kappa`): the
   judge disagrees with people, and its grades decide nothing: the state is "undecided" and `basis`
   names kappa, its interval and min_kappa.
2. Agreement *unsettled* (the interval straddles min_kappa): "undecided" too; `basis` says how many
   more human grades would settle whether the judge can be trusted (`Agreement.more_grades`).
3. Human grades on 2+ items and judge-only grades on 1+ others (agreement trusted): the one-sided
   PPI++ bounds (Angelopoulos, Duchi & Zrnic 2023; `advisor.judge.ppi`) on the rate people would give.
4. Human grades on every scored item: their own one-sided Wilson bounds.
With `rubric.in_pass_all`, pass_all (every check and every criterion) is judged the same way, its
human counterpart being the items people graded on every criterion; a criterion whose own agreement
is refused or unsettled leaves pass_all undecided too (`parts`).

5. No human grades (or one): the judge's rate over the items it scored, one-sided Wilson bounds, and
   `basis` says "judge only, not checked against people". With `rubric.samples` > 1 the bounds come
   from a two-level bootstrap (items, then one of each item's k grades), so they include judge noise.

Unscored grades are never a pass nor a fail: they are left out of every rate and counted in `basis`.
The bounds are one-sided at `confidence` each, as the verdict's rule reads them (advisor.verdict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from advisor.judge.agreement import Agreement, agreement
from advisor.judge.ppi import PPIEstimate, ppi_mean
from advisor.stats import lever_state, one_sided_bounds


@dataclass(frozen=True)
class CriterionEvidence:
    """One lever's grades on one criterion and what people said of them.

    `ids`/`grades`: per eval item in order, the judge's grade (the majority of its samples; None unscored);
    `unscored`: items with no grade; `agreement`: kappa etc. on items graded by both (None under 2);
    `ppi`: PPI++ with 2+ human grades and 1+ judge-only grade (None otherwise); `human`: the human
    grades on scored items; `samples`: per item, its k judge grades (None with k = 1);
    `judge_bounds`: the judge-only one-sided (lower, upper) bounds; `confidence` in (0, 1)."""

    criterion: str
    ids: list[str]
    grades: list[float | None]
    unscored: int
    human: dict[str, float]
    agreement: Agreement | None
    ppi: PPIEstimate | None
    judge_bounds: tuple[float, float] | None
    confidence: float
    min_kappa: float
    samples: list[list[float | None]] | None = None
    # pass_all with rubric.in_pass_all: each criterion's own agreement with people (a refused or unsettled
    # one leaves pass_all undecided too)
    parts: dict[str, Agreement] | None = None

    @property
    def scored(self) -> list[float]:
        return [g for g in self.grades if g is not None]

    @property
    def rate(self) -> float | None:
        s = self.scored
        return sum(s) / len(s) if s else None


def two_level_bounds(samples: Sequence[Sequence[float | None]], confidence: float, *, n_boot: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """One-sided (lower, upper) bounds at `confidence` on the pass rate, judge noise included: a
    two-level percentile bootstrap (resample items, then one of each drawn item's k grades; numpy).
    `samples`: per item its k grades (unscored ones, None, dropped; items with none scored left out).
    Raises ValueError when no item has a scored grade."""
    items = [np.array([g for g in s if g is not None], dtype=float) for s in samples]
    items = [s for s in items if len(s)]
    if not items:
        raise ValueError("no item has a scored grade")
    rng = np.random.default_rng(seed)
    n = len(items)
    k = max(len(s) for s in items)
    table = np.full((n, k), np.nan)
    for i, s in enumerate(items):
        table[i, : len(s)] = s
    sizes = np.array([len(s) for s in items])
    pick_item = rng.integers(0, n, size=(n_boot, n))
    pick_grade = (rng.random((n_boot, n)) * sizes[pick_item]).astype(int)
    means = table[pick_item, pick_grade].mean(axis=1)
    return float(np.quantile(means, 1 - confidence)), float(np.quantile(means, confidence))


def criterion_evidence(criterion: str, grades: Mapping[str, float | None], human: Mapping[str, float], *,
                       confidence: float, min_kappa: float,
                       samples: Mapping[str, Sequence[float | None]] | None = None, seed: int = 0) -> CriterionEvidence:
    """The evidence for one lever and criterion (module docstring); `samples`: example_id -> the k grades
    (k > 1) whose majority `grades` holds."""
    ids = list(grades)
    scored = {e: g for e, g in grades.items() if g is not None}
    both = [e for e in human if e in scored]
    rest = [e for e in scored if e not in human]
    # seed 0, as results.json's judge section computes it, so the verdict quotes the same kappa interval
    agree = (agreement([human[e] for e in both], [scored[e] for e in both], confidence=confidence,
                       min_kappa=min_kappa) if len(both) >= 2 else None)
    ppi = (ppi_mean([human[e] for e in both], [scored[e] for e in both], [scored[e] for e in rest],
                    confidence=confidence) if len(both) >= 2 and rest else None)
    bounds = None
    if scored:
        if samples is not None and any(len(s) > 1 for s in samples.values()):
            bounds = two_level_bounds([samples[e] for e in ids], confidence, seed=seed)
        else:
            bounds = one_sided_bounds(list(scored.values()), confidence)
    return CriterionEvidence(criterion, ids, [grades[e] for e in ids], len(ids) - len(scored),
                             {e: human[e] for e in both}, agree, ppi, bounds, confidence, min_kappa,
                             [list(samples[e]) for e in ids] if samples is not None else None)


def _unscored(ev: CriterionEvidence) -> str:
    n = len(ev.ids)
    if not ev.unscored:
        return f"the judge scored all {n} outputs"
    return (f"{ev.unscored} of {n} judge grades unscored (answers that could not be read: neither pass nor fail, "
            "left out of the rate)")


def assess_criterion(ev: CriterionEvidence, threshold: float, rule: str) -> tuple[str, float, float, str]:
    """(state, lower, upper, basis) for a lever whose target metric is the criterion `ev` is about.

    `state`: "meets" / "fails" / "undecided" (advisor.stats.lever_state on the bounds chosen in the
    module docstring's order); `lower`/`upper`: one-sided bounds at ev.confidence (the judge-only ones,
    shown but not used, when agreement is refused or unsettled; 0 and 1 with nothing scored);
    `basis`: one sentence saying which evidence the bounds come from and why."""
    pct = int(round(100 * ev.confidence))
    c, a = ev.criterion, ev.agreement
    judge_lo, judge_hi = ev.judge_bounds if ev.judge_bounds is not None else (0.0, 1.0)
    tail = _unscored(ev)
    doubtful = {name: p for name, p in (ev.parts or {}).items() if p.state in ("refused", "unsettled")}
    if (a is None or a.state == "trusted") and doubtful:
        name, p = next(iter(doubtful.items()))
        inner = assess_criterion(CriterionEvidence(name, ev.ids, ev.grades, ev.unscored, {}, p, None, ev.judge_bounds,
                                                   ev.confidence, ev.min_kappa), threshold, rule)[3]
        return "undecided", judge_lo, judge_hi, f"{c} is not decided: it includes {name}, and {inner}"
    if a is not None and a.state in ("refused", "unsettled"):
        kappa = (f"Cohen's kappa {a.kappa:.2f} ({pct}% interval {a.kappa_low:.2f} to {a.kappa_high:.2f}, "
                 f"{a.n} items graded by both)")
        if a.state == "refused":
            why = (f"{c} is not decided: the judge disagrees with people on it: {kappa} lies wholly below "
                   f"rubric.min_kappa {a.min_kappa:g}, so its grades are refused; more human grades are "
                   "unlikely to lift it over: fix the rubric's wording or the judge, or grade every output "
                   "by hand (advise label)")
        else:
            more = f"about {a.more_grades} more human grades" if a.more_grades else "more human grades"
            why = (f"{c} is not decided yet: whether the judge can be trusted on it is unsettled: {kappa} "
                   f"straddles rubric.min_kappa {a.min_kappa:g}; {more} (advise label) would settle it")
        return "undecided", judge_lo, judge_hi, f"{why}; {tail}"
    if ev.rate is None:
        return "undecided", 0.0, 1.0, f"{c} is not decided: the judge scored none of the {len(ev.ids)} outputs"
    if ev.ppi is not None:
        p = ev.ppi
        state = lever_state(p.value, p.lower_bound, p.upper_bound, threshold, rule)
        return state, p.lower_bound, p.upper_bound, (
            f"{c}: PPI++ estimate {p.value:.3f} of the rate people would give, from {p.n_human} human grades and "
            f"{p.n_judge} judge-only grades (kappa {a.kappa:.2f}, interval {a.kappa_low:.2f} to {a.kappa_high:.2f}, "
            f"trusted at min_kappa {a.min_kappa:g}; worth about {p.effective_n:.0f} human grades); one-sided {pct}% "
            f"bounds {p.lower_bound:.3f}–{p.upper_bound:.3f}; {tail}") if a is not None else (
            f"{c}: PPI++ estimate {p.value:.3f}; one-sided {pct}% bounds {p.lower_bound:.3f}–{p.upper_bound:.3f}; {tail}")
    if a is not None and len(ev.human) == len(ev.scored):  # people graded every scored output
        values = list(ev.human.values())
        lo, hi = one_sided_bounds(values, ev.confidence)
        value = float(np.mean(values))
        return lever_state(value, lo, hi, threshold, rule), lo, hi, (
            f"{c}: human grades on all {len(values)} scored outputs, rate {value:.3f}, one-sided {pct}% bounds "
            f"{lo:.3f}–{hi:.3f}; {tail}")
    state = lever_state(ev.rate, judge_lo, judge_hi, threshold, rule)
    if state == "undecided":
        from advisor.stats import total_items_needed

        total = total_items_needed(ev.rate, threshold, ev.confidence)
        tail += ("; its rate equals the threshold, so no eval size settles it" if total is None else
                 f"; about {max(total - len(ev.scored), 1):,} more scored eval items would settle it (power "
                 "calculation, statsmodels, 80% power)")
    noise = " (two-level bootstrap over items and the judge's samples: judge noise included)" if (
        ev.samples is not None and any(len(s) > 1 for s in ev.samples)) else ""
    return state, judge_lo, judge_hi, (
        f"{c}: judge only, not checked against people: pass rate {ev.rate:.3f} over {len(ev.scored)} scored "
        f"outputs, one-sided {pct}% bounds {judge_lo:.3f}–{judge_hi:.3f}{noise}; {tail}")


__all__ = ["CriterionEvidence", "assess_criterion", "criterion_evidence", "two_level_bounds"]
