"""The verdict, computed once: each lever's state against the target, the recommendation and its reasons.

Every reader (scorecard, report, `advise show`, `advise compare`) formats what this module decided
and re-derives nothing.

States (`target.rule`, advisor.record.LeverVerdict):
- lower_bound (default): meets when the one-sided lower confidence bound of the target metric is
  at or above the threshold; fails when the one-sided upper bound is below it; otherwise undecided,
  with the eval items that would settle it (a statsmodels power calculation, advisor.stats).
- point: meets when the point estimate reaches the threshold (a quick look; its false "meets"
  rate near the threshold is far above 1 − confidence).
- A rubric criterion as target.metric (or pass_all with rubric.in_pass_all): the row carries
  `criterion` evidence and its state and bounds come from advisor.judge.decision.assess_criterion
  (PPI++ with human grades, the judge's own Wilson bounds without; undecided while people's
  agreement with the judge is refused or unsettled); `LeverVerdict.basis` says which.

The recommendation (`decide`):
1. Only a lever that meets the target can be recommended, and never one that is not
   significantly better than the trivial baseline (it would be no better than guessing).
2. Among those, a prompt-family lever is preferred to retrieval and fine-tuning whatever their
   cost (nothing to index, train or retrain); then the cheapest in the first year (setup plus
   twelve months at the stated volume), ties by rung.
3. The non-inferiority margin never makes a lever the recommendation: only a lever that meets can
   be, and the cheapest that meets already is. It qualifies the comparisons: a cheaper row is
   `non_inferior` when the one-sided lower bound of its paired difference to the chosen lever is
   above −margin, and the sentence says so only then. (Version 1 let a cheaper lever within the
   margin replace one that meets even when it had not shown it meets: an undecided `rag` was
   recommended over a `lora` that met.)
4. No lever meets: `undecided` when any lever's state is open (the reason names each, and the
   eval items that would settle it); `none` when every lever fails, with the next lever to try.

Paired comparisons use the eval groups where there are any (advisor.stats.paired_difference: a
cluster bootstrap of the paired differences); McNemar's exact test only for ungrouped binary items.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from advisor.record import (
    BaselineRecord,
    BreakEven,
    Comparison,
    CostRecord,
    CurveRecord,
    LeverVerdict,
    MetricRecord,
    TargetRecord,
    VerdictRecord,
)
from advisor.scoring import SET_METRICS, normalize_answer, parse_output, score, set_statistic
from advisor.stats import (  # RULES and lever_state live there: advisor.judge.decision uses them too
    PairedDifference,
    bootstrap_statistic,
    design_effect,
    lever_state,
    metric_interval,
    one_sided_bounds,
    paired_difference,
    paired_statistic_difference,
    total_items_needed,
)

POWER = 0.80  # power of the items-needed calculation (the field's customary default)
POWER_NOTE = "power calculation (statsmodels): one-sided test against the threshold at the observed rate, 80% power"


# -- one lever's state ------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """One lever's figure against the threshold. `more_items_needed`: eval items to add (undecided only;
    None when no size settles it: the estimate equals the threshold)."""

    value: float
    state: str
    lower_bound: float
    upper_bound: float
    more_items_needed: int | None
    n: int


def assess(values: Sequence[float] | None, threshold: float, confidence: float, rule: str, *,
           groups: Sequence[Any] | None = None, set_statistic: Callable[[np.ndarray], float] | None = None,
           n: int | None = None, seed: int = 0) -> Assessment:
    """State, one-sided bounds and eval items still needed for one lever.

    `values`: per-item scores of the target metric (length n). For a set-level metric (macro-F1) pass
    `set_statistic(indices) -> float` and `n` instead: its bounds come from a percentile bootstrap and
    the spread for the power calculation from the bootstrap's width. `groups`: one label per item
    (items in a group are resampled together, and the power calculation is inflated by the design
    effect). Raises ValueError without values or a set statistic, or for an unknown rule.
    """
    binary = False
    if values is not None:
        x = np.asarray(values, dtype=float)
        n = int(x.size)
        value = float(x.mean())
        lower, upper = one_sided_bounds(x, confidence, groups=groups, seed=seed)
        binary = bool(np.all((x == 0.0) | (x == 1.0)))
        std = float(x.std(ddof=1)) if n > 1 else 0.0
        deff = design_effect(x, groups) if groups is not None else 1.0
    elif set_statistic is not None and n:
        iv = bootstrap_statistic(n, set_statistic, 2 * confidence - 1, seed=seed, groups=groups)
        value, lower, upper = iv.value, iv.low, iv.high
        std = (upper - lower) / (2 * sps.norm.ppf(confidence)) * np.sqrt(n)
        deff = 1.0
    else:
        raise ValueError("assess needs per-item values, or a set statistic with n")
    state = lever_state(value, lower, upper, threshold, rule)
    need = None
    if state == "undecided":
        total = total_items_needed(value, threshold, confidence, POWER, binary=binary, std=std,
                                   design_effect=deff)
        need = None if total is None else max(total - n, 1)
    return Assessment(value, state, lower, upper, need, int(n))


# -- the trivial baseline ---------------------------------------------------------------------


@dataclass
class Baseline:
    """The answer a guesser who saw only train would give, scored like a lever."""

    name: str
    answer: Any
    metrics: dict[str, MetricRecord]
    per_item: dict[str, list[float]]
    preds: list[Any]

    def record(self) -> BaselineRecord:
        return BaselineRecord(name=self.name, answer=self.answer, metrics=self.metrics)


def baseline_answer(kind: str, labels: Sequence[str] | None, train_outputs: Sequence[Any]) -> tuple[str, Any]:
    """(name, answer): the majority train label (classification, ties to the label listed first), the
    empty object (extraction), or the most common train answer (qa, generation)."""
    if kind == "classification":
        counts = Counter(train_outputs)
        labs = list(labels or [])
        return "majority-label", max(labs, key=lambda lab: (counts.get(lab, 0), -labs.index(lab)))
    if kind == "extraction":
        return "empty-object", {}
    counts = Counter(normalize_answer(o) for o in train_outputs)
    if not counts:
        return "most-common-answer", ""
    top = counts.most_common(1)[0][0]
    return "most-common-answer", next(o for o in train_outputs if normalize_answer(o) == top)


def trivial_baseline(task: Any, data: Any, groups: Sequence[Any] | None = None) -> Baseline:
    """The baseline of `task` (advisor.spec.Task) on `data` (advisor.data.Dataset), by the shared scorer.

    With a check (or pass_all) as target.metric it is the empty answer "" ("empty-answer"), run through
    the checks like any output: a constant answer taken from train is a well-formed answer, and would
    pass checks on form for every item. Its gold metrics are scored only where eval has gold."""
    if task.target.metric in task.check_metrics or task.target_is_criterion:
        name, answer, raw = "empty-answer", "", ""
        pred = parse_output(task, raw)
    else:
        name, answer = baseline_answer(task.kind, task.labels, [ex.output for ex in data.train])
        pred, raw = answer, json.dumps(answer, ensure_ascii=False) if isinstance(answer, dict) else str(answer)
    golds = [ex.output for ex in data.eval]
    preds = [pred] * len(golds)
    scores = score(task, golds, preds, [raw] * len(golds))
    conf = task.target.confidence
    metrics = {m: MetricRecord(**metric_interval(v, conf, groups=groups, seed=task.seed).as_dict())
               for m, v in scores.per_item.items()}
    for m, v in scores.aggregate.items():
        metrics.setdefault(m, MetricRecord(value=v, ci_low=v, ci_high=v))
    return Baseline(name, answer, metrics, scores.per_item, preds)


def eval_groups(data: Any) -> list[Any] | None:
    """The optional `group` field of eval examples (items about one passage), or None when absent."""
    groups = [ex.fields.get("group") for ex in data.eval]
    if all(g is None for g in groups):
        return None
    return [g if g is not None else f"\x00{ex.id}" for g, ex in zip(groups, data.eval)]  # no group: its own


# -- evidence and the decision ----------------------------------------------------------------


@dataclass(frozen=True)
class Curation:
    """A row trained on cleaned data (lora-curated): the row of the same training on the data as given
    (`plain_row`), how many train items were dropped, and whether a person is assumed to review them."""

    plain_row: str
    dropped: int
    reviewed: bool = False


@dataclass
class LeverEvidence:
    """What the verdict needs of one measured row: its identity as declared by the lever, its metrics
    and cost, and its per-item target scores (`per_item[target.metric]`; absent for a set statistic,
    then `preds` and the golds give it)."""

    name: str
    rung: float
    family: str
    n_eval: int
    metrics: Mapping[str, MetricRecord]
    cost: CostRecord
    per_item: Mapping[str, Sequence[float]]
    preds: Sequence[Any]
    retrieves: bool = False
    # With a rubric criterion as target.metric: its grades and what people said of them
    # (advisor.judge.decision.CriterionEvidence); the state is then read off it (assess_criterion).
    criterion: Any = None
    curation: Curation | None = None  # trained on cleaned data: the verdict weighs it against its plain row


@dataclass
class Verdict:
    levers: dict[str, LeverVerdict]
    record: VerdictRecord

    @property
    def lever(self) -> str | None:
        return self.record.lever


@dataclass
class _Stats:
    """The paired machinery over one run's items: target scores or a set statistic, and the groups."""

    target: TargetRecord
    golds: Sequence[Any]
    labels: Sequence[str]
    groups: Sequence[Any] | None
    seed: int
    _cache: dict[tuple[str, str, float], PairedDifference] = field(default_factory=dict)

    def diff(self, a: LeverEvidence, b: LeverEvidence, confidence: float) -> PairedDifference:
        key = (a.name, b.name, confidence)
        if key not in self._cache:
            m = self.target.metric
            if m in a.per_item and m in b.per_item:
                xa, xb, groups = list(a.per_item[m]), list(b.per_item[m]), self.groups
                keep = [i for i, (u, v) in enumerate(zip(xa, xb)) if u is not None and v is not None]
                if len(keep) < len(xa):  # a criterion's unscored grades: the items both rows have scored
                    xa, xb = [xa[i] for i in keep], [xb[i] for i in keep]
                    groups = None if groups is None else [groups[i] for i in keep]
                self._cache[key] = paired_difference(xa, xb, confidence, groups=groups, seed=self.seed)
            else:
                self._cache[key] = self._set_diff(a.preds, b.preds, confidence)
        return self._cache[key]

    def _set_diff(self, pa: Sequence[Any], pb: Sequence[Any], confidence: float) -> PairedDifference:
        """Macro-F1 of one row minus another's on the same resampled items (paired bootstrap, scipy)."""
        fa, fb = (set_statistic(self.target.metric, self.golds, p, self.labels) for p in (pa, pb))

        def gap(idx: np.ndarray) -> float:
            return fa(idx) - fb(idx)

        return paired_statistic_difference(len(self.golds), gap, confidence, groups=self.groups, seed=self.seed)


def better_than_baseline(ev: LeverEvidence, baseline: Baseline, stats: _Stats) -> bool:
    """Whether a row is significantly better than the trivial baseline on the target metric: the one-sided
    lower bound (task confidence) of the paired difference is above zero."""
    base = LeverEvidence("baseline", -1, "prompt", len(baseline.preds), baseline.metrics, _ZERO_COST,
                         baseline.per_item, baseline.preds)
    return stats.diff(ev, base, 2 * stats.target.confidence - 1).low > 0


_ZERO_COST = CostRecord(setup_usd=0, per_1k_queries_usd=0, latency_ms_p50=None, latency_ms_p95=None,
                        upkeep_usd_per_month=0, monthly_usd=0, first_year_usd=0, tokens_in_mean=0,
                        tokens_out_mean=0, compute_s_per_query=0, setup_seconds=0)


def _f(x: float) -> str:
    return f"{x:.3f}"


SET_POWER_NOTE = ("approximate for a set statistic: a normal power calculation (statsmodels) with the per-item "
                  "spread read off the bootstrap interval, 80% power")


def more_items_text(v: LeverVerdict, n_eval: int, metric: str = "") -> str:
    """The eval items that would settle an undecided row, in words (`metric`: the target metric; a
    set statistic such as macro-F1 says its count is approximate)."""
    need = v.more_items_needed
    if need is None:
        return "its estimate equals the threshold, so no eval size settles it at this rate"
    note = SET_POWER_NOTE if metric in SET_METRICS else POWER_NOTE
    return f"about {need:,} more eval items ({need + n_eval:,} in all) would settle it ({note})"


def comparison_message(lever: str, against: str, shown: PairedDifference, one_sided: PairedDifference, *,
                       pct: int, margin: float, extra_usd: float | None, against_meets: bool) -> str:
    """One sentence about `lever` − `against`, true of the numbers it shows.

    `shown`: the difference with its two-sided interval at the task's confidence; `one_sided`: the same
    at 2·confidence − 1 (its ends are the one-sided bounds). "significantly better/worse" only when the
    named test's one-sided p is below 1 − confidence; "worse by more than the margin" only when the
    one-sided upper bound is below −margin; "not worse by more than the margin" only when the one-sided
    lower bound is above it; otherwise it says neither is shown.
    """
    alpha = round(1 - pct / 100, 10)
    head = (f"{lever} − {against} = {shown.value:+.3f} ({pct}% paired interval {shown.low:+.3f} to "
            f"{shown.high:+.3f}; {shown.test}, two-sided p={shown.p_value:.3g})")
    if shown.p_greater < alpha:
        sig = f"it is significantly better (one-sided p={shown.p_greater:.3g} < {alpha:g})"
    elif shown.p_less < alpha:
        sig = f"it is significantly worse (one-sided p={shown.p_less:.3g} < {alpha:g})"
    else:
        sig = f"the difference is not significant (one-sided p={min(shown.p_less, shown.p_greater):.3g} ≥ {alpha:g})"
    if extra_usd is None:
        return f"{head}: {sig}; its first-year cost cannot be compared (a price is unknown)."
    if extra_usd > 0:
        tail = (f", and {against} already meets the target: the extra ${extra_usd:,.2f} in the first year buys "
                "nothing the target asks for" if against_meets else f", at ${extra_usd:,.2f} more in the first year")
        return f"{head}: {sig}{tail}."
    cheaper = f"${-extra_usd:,.2f} cheaper in the first year"
    if margin > 0:
        if one_sided.low > -margin:
            sig += (f"; not worse by more than the margin {margin:g} (one-sided lower bound {one_sided.low:+.3f} "
                    f"> −{margin:g})")
        elif one_sided.high < -margin:
            sig += f"; worse by more than the margin {margin:g} (one-sided upper bound {one_sided.high:+.3f})"
        else:
            sig += (f"; not shown to be within the margin {margin:g} (one-sided lower bound {one_sided.low:+.3f} "
                    f"≤ −{margin:g})")
    return f"{head}: {sig}, {cheaper}."


def break_even(rows: Sequence[LeverEvidence]) -> list[BreakEven]:
    """For each pair of rows, the monthly volume above which the one dearer to set up (setup + a year of
    upkeep) becomes cheaper over the first year, or None: never.

    Solves setup_a + 12 (upkeep_a + q p_a) = setup_b + 12 (upkeep_b + q p_b) for q, in queries a month,
    with p the per-query price. Rows whose per-query price is unknown are skipped.
    """
    out: list[BreakEven] = []
    known = [r for r in rows if r.cost.per_1k_queries_usd is not None]
    for i, a in enumerate(known):
        for b in known[i + 1:]:
            fixed = {r.name: r.cost.setup_usd + 12 * r.cost.upkeep_usd_per_month for r in (a, b)}
            cheap, dear = (a, b) if fixed[a.name] <= fixed[b.name] else (b, a)
            p_cheap = (cheap.cost.per_1k_queries_usd or 0.0) / 1000
            p_dear = (dear.cost.per_1k_queries_usd or 0.0) / 1000
            gap = fixed[dear.name] - fixed[cheap.name]
            if p_dear < p_cheap:
                q: float | None = gap / (12 * (p_cheap - p_dear))
                msg = f"{dear.name} becomes cheaper than {cheap.name} in the first year above {q:,.0f} queries a month"
            else:
                q = None
                msg = (f"{dear.name} never becomes cheaper than {cheap.name}: it costs more to set up and keep "
                       f"(${gap:,.2f} a year) and no less per query")
            out.append(BreakEven(cheaper=cheap.name, dearer=dear.name, queries_per_month=q, message=msg))
    return out


FORMAT_FIX = "a format miss (show the format with examples, or fine-tune for it)"


def diagnose(name: str, metrics: Mapping[str, MetricRecord]) -> str | None:
    """Where a row that fell short loses its points, read off the metrics it already has.

    Retrieval miss (the gold source is not retrieved), reading miss (it is, but the answer is wrong),
    format miss (the right answer is there, not in the asked form). Each points at a different fix,
    which one headline number cannot.
    """
    def value(key: str) -> float | None:
        m = metrics.get(key)
        return None if m is None else m.value

    recall = next((m.value for k, m in metrics.items() if k.startswith("retrieval_recall@")), None)
    contains, exact, valid = value("contains"), value("exact_match"), value("json_valid")
    found: list[str] = []
    if recall is not None and recall < 0.8:
        found.append(f"the gold source is retrieved for only {recall:.0%} of questions: a retrieval miss "
                     "(try chunking, k or the embedding model before the generator)")
    elif recall is not None and contains is not None and contains < recall - 0.2:
        found.append(f"the gold source is retrieved for {recall:.0%} of questions but the right answer appears in "
                     f"only {contains:.0%} of outputs: a reading miss (the model does not use what it is given)")
    if contains is not None and exact is not None and contains - exact >= 0.1:
        lead = "" if found else f"the right answer appears in {contains:.0%} of outputs but "
        found.append(f"{lead}only {exact:.0%} match exactly: {FORMAT_FIX}")
    if valid is not None and valid < 0.95:
        found.append(f"only {valid:.0%} of outputs are valid JSON objects: {FORMAT_FIX}")
    return f"{name}: " + "; ".join(found) + "." if found else None


# The ladder by the rungs the built-in levers declare: after the highest rung run, the first step above it.
_NEXT = [
    (1.0, "prompt-few-shot: show labelled train examples in the prompt"),
    (2.0, "rag: put {retrieved} into the prompt per query"),
    (3.0, "lora: fine-tune an adapter on the train set"),
    (4.0, "lora-rag: the fine-tuned adapter with {retrieved} in the prompt{lora_tail}"),
    (float("inf"), "more or cleaner training data ({more_data}), or a larger base model"),
]


def next_step(top_rung: float | None, has_knowledge: bool, curve: str | None = None) -> str:
    """What to try after the highest rung run (`top_rung`, as the levers declare it) when nothing run
    so far meets the target. `curve`: what a measured learning curve said; it replaces the suggestion
    to measure one."""
    if top_rung is None:
        return "a lever from the ladder: prompt first"
    retrieved = "passages from the knowledge base" if has_knowledge else "the most similar labelled train examples"
    measure = "run with --learning-curve to see how many training examples the target needs"
    text = next(t for r, t in _NEXT if r > top_rung)
    return text.format(retrieved=retrieved, more_data=curve or measure,
                       lora_tail=f" ({curve})" if curve else f"; or {measure}")


def _combination(rows: Sequence[LeverEvidence], chosen: LeverEvidence | None) -> str | None:
    """The combination the evidence supports, when retrieval and fine-tuning each fixed one part."""
    notes = {r.name: diagnose(r.name, r.metrics) or "" for r in rows}
    retrieval_finds = [r.name for r in rows if r.family == "retrieval" and "reading miss" in notes[r.name]]
    format_misses = [r.name for r in rows if r.family != "fine-tuning" and "format miss" in notes[r.name]]
    tuned = [r for r in rows if r.family == "fine-tuning"]
    combined = [r for r in tuned if r.retrieves]
    if chosen is not None and chosen in combined and (retrieval_finds or format_misses):
        return (f"{chosen.name}: fine-tuned for the format, fed by retrieval for the facts — retrieval alone "
                f"found the sources ({', '.join(retrieval_finds or format_misses)}) but the base model did not "
                "use them in the asked form")
    if tuned and not combined and (retrieval_finds or format_misses):
        return ("the evidence supports a combination: fine-tune for the format and feed the facts by retrieval "
                "(lora-rag), since " + ", ".join(retrieval_finds or format_misses) + " lost points on form, "
                "not on finding the facts")
    return None


def decide(target: TargetRecord, rows: Sequence[LeverEvidence], baseline: Baseline | None, *,
           golds: Sequence[Any], labels: Sequence[str] | None = None, has_knowledge: bool = True,
           curves: Mapping[str, CurveRecord] | None = None, groups: Sequence[Any] | None = None,
           seed: int = 0) -> Verdict:
    """Assess every row and decide (the rules are in the module docstring).

    `rows`: the measured rows, each with per-item target scores over the same eval items in the same
    order as `golds` (or predictions, for macro-F1). `groups`: one group label per eval item.
    `curves`: measured learning curves by row name. Raises ValueError for an unknown rule.
    """
    pct = int(round(100 * target.confidence))
    metric, threshold, conf = target.metric, target.threshold, target.confidence
    stats = _Stats(target, golds, labels or [], groups, seed)
    verdicts: dict[str, LeverVerdict] = {}
    rows = [_with_grades(r, metric) for r in rows]
    for r in rows:
        if r.criterion is not None:
            from advisor.judge.decision import assess_criterion

            st, lo, hi, basis = assess_criterion(r.criterion, threshold, target.rule)
            guessing = baseline is not None and not better_than_baseline(r, baseline, stats)
            verdicts[r.name] = LeverVerdict(state=st, lower_bound=lo, upper_bound=hi, more_items_needed=None,
                                            no_better_than_baseline=guessing, basis=basis)
            continue
        if metric in r.per_item:
            a = assess(r.per_item[metric], threshold, conf, target.rule, groups=groups, seed=seed)
        else:
            a = assess(None, threshold, conf, target.rule, set_statistic=set_statistic(metric, golds, r.preds, labels or []),
                       n=len(golds), seed=seed)
        guessing = baseline is not None and not better_than_baseline(r, baseline, stats)
        verdicts[r.name] = LeverVerdict(state=a.state, lower_bound=a.lower_bound, upper_bound=a.upper_bound,
                                        more_items_needed=a.more_items_needed, no_better_than_baseline=guessing)
    if not rows:
        return Verdict({}, VerdictRecord(outcome="none", reason="No lever was run."))

    # An unknown price (null) cannot be ranked on cost: such rows go last and a note says so.
    ranked = sorted(rows, key=lambda r: (r.cost.first_year_usd is None, r.cost.first_year_usd or 0.0, r.rung))
    state = {r.name: verdicts[r.name].state for r in ranked}
    notes = [n for r in ranked if state[r.name] != "meets" for n in [diagnose(r.name, r.metrics)] if n]
    notes += [f"{r.name}: price unknown, so it could not be ranked on cost (add it under `prices:`)"
              for r in ranked if r.cost.first_year_usd is None]
    usable = [r for r in ranked if not verdicts[r.name].no_better_than_baseline]
    eligible = [r for r in usable if state[r.name] == "meets"]
    prompt_family = [r for r in eligible if r.family == "prompt"]
    pool = prompt_family or eligible  # a prompt that meets the target beats retrieval/fine-tuning at any cost
    best = pool[0] if pool else None
    reasons: list[str] = []

    def compare(r: LeverEvidence, against: LeverEvidence) -> Comparison:
        shown = stats.diff(r, against, conf)
        one_sided = stats.diff(r, against, 2 * conf - 1)
        costs = (r.cost.first_year_usd, against.cost.first_year_usd)
        extra = None if None in costs else float(costs[0]) - float(costs[1])  # type: ignore[arg-type]
        msg = comparison_message(r.name, against.name, shown, one_sided, pct=pct, margin=target.margin,
                                 extra_usd=extra, against_meets=state[against.name] == "meets")
        return Comparison(lever=r.name, against=against.name, metric=metric,
                          difference=MetricRecord(value=shown.value, ci_low=shown.low, ci_high=shown.high),
                          test=shown.test, p_value=shown.p_value, significantly_better=shown.p_greater < 1 - conf,
                          significantly_worse=shown.p_less < 1 - conf, non_inferior=one_sided.low > -target.margin,
                          message=msg)

    closest_pool = usable or list(ranked)
    against = best or max(closest_pool, key=lambda r: r.metrics[metric].value)
    comparisons = [compare(r, against) for r in ranked if r is not against]
    cleaning = [c for r in ranked if r.curation is not None for c in [_cleaning(r, ranked, compare)] if c is not None]
    for found, _ in cleaning:
        comparisons += [c for c in found if not any((x.lever, x.against) == (c.lever, c.against) for x in comparisons)]
    pairs = break_even(eligible)
    cheaper = ranked[: ranked.index(best)] if best is not None else list(ranked)
    reasons += [_why_short(r, verdicts[r.name], metric, threshold, pct) for r in cheaper if r is not best]
    reasons += [n for r in cheaper for n in [diagnose(r.name, r.metrics)] if n and state[r.name] != "meets"]
    names = [r.name for r in ranked]
    if best is not None:
        if best in prompt_family and len(eligible) > len(prompt_family):
            reasons.append(f"{best.name} is a prompt: it is preferred to the retrieval and fine-tuning levers "
                           "that also meet the target, whatever their cost (nothing to index, train or retrain)")
        reasons += [c.message for c in comparisons if c.lever not in {r.name for r in cheaper}]
    reasons += [b.message for b in pairs]
    combo = _combination(ranked, best)
    if combo:
        reasons.append(combo)
    reasons += [said for _, said in cleaning]

    if best is not None:
        m, v = best.metrics[metric], verdicts[best.name]
        parts = [f"{best.name} reaches {metric} {_f(m.value)} ({pct}% interval {_f(m.ci_low)}–{_f(m.ci_high)}) "
                 f"against a target of {_f(threshold)} on {best.n_eval} held-out items",
                 (f"at ${best.cost.per_1k_queries_usd:.4f} per 1,000 queries " if best.cost.per_1k_queries_usd
                  is not None else "at an unknown price per query ") + f"and ${best.cost.setup_usd:.2f} to set up"]
        short = [r for r in cheaper if r is not best]
        if short:
            parts.append("the cheaper " + ", ".join(f"{r.name} ({_f(r.metrics[metric].value)}, {state[r.name]})"
                                                   for r in short) + " did not qualify")
        if v.basis:  # a rubric criterion: what the bounds rest on (PPI++, or the judge only)
            parts.append(v.basis)
        if target.rule == "lower_bound":
            parts.append(f"its one-sided {pct}% lower bound {_f(v.lower_bound)} clears the target")
        elif v.lower_bound < threshold:
            parts.append(f"under the point rule; its one-sided {pct}% lower bound {_f(v.lower_bound)} is below the "
                         "target, so it is not shown at that confidence: collect more eval items before relying on it")
        return Verdict(verdicts, VerdictRecord(outcome="recommend", lever=best.name, reason="; ".join(parts) + ".",
                                               ranking=names, notes=notes, comparisons=comparisons,
                                               break_even=pairs, reasons=reasons))

    undecided = [r for r in ranked if state[r.name] == "undecided"]
    if undecided:
        lead = max(undecided, key=lambda r: r.metrics[metric].value)
        said = []
        for r in sorted(undecided, key=lambda r: -r.metrics[metric].value):
            v = verdicts[r.name]
            guess = "; it is not yet shown better than the trivial baseline either" if v.no_better_than_baseline else ""
            if v.basis:
                said.append(f"{r.name}: {v.basis}{guess}")
                continue
            said.append(f"{r.name} scores {_f(r.metrics[metric].value)} with one-sided bounds {_f(v.lower_bound)}–"
                        f"{_f(v.upper_bound)}: {more_items_text(v, r.n_eval, metric)}{guess}")
        step = (f"collect more eval items for {lead.name}: {more_items_text(verdicts[lead.name], lead.n_eval, metric)}"
                if not verdicts[lead.name].basis else f"for {lead.name}, {verdicts[lead.name].basis}")
        open_ = (f"{undecided[0].name} is neither shown to meet nor shown to fail it" if len(undecided) == 1 else
                 f"{len(undecided)} of {len(ranked)} levers are neither shown to meet nor shown to fail it")
        reason = (f"Undecided: no lever is shown to meet {metric} ≥ {_f(threshold)} at {pct}% confidence, and "
                  f"{open_}. " + " ".join(s + "." for s in said))
        return Verdict(verdicts, VerdictRecord(outcome="undecided", reason=reason, closest=lead.name, next_step=step,
                                               ranking=names, notes=notes, comparisons=comparisons,
                                               break_even=pairs, reasons=reasons))

    closest = against
    m = closest.metrics[metric]
    top = max(r.rung for r in rows)
    curves = curves or {}
    top_row = max(rows, key=lambda r: r.rung)
    name = top_row.name if top_row.name in curves else closest.name  # the top rung's curve, else the closest's
    said_curve = curves.get(name)
    step = next_step(top, has_knowledge, f"{name}'s learning curve: {said_curve.message}" if said_curve else None)
    guessing = [r.name for r in ranked if state[r.name] == "meets"]  # met, but no better than the baseline
    if guessing:
        lead = (f"No lever can be recommended: {', '.join(guessing)} {'meets' if len(guessing) == 1 else 'meet'} "
                f"the target {metric} ≥ {_f(threshold)} but {'is' if len(guessing) == 1 else 'are'} not "
                "significantly better than the trivial baseline (no better than guessing), and every other "
                "lever fails it")
    else:
        lead = (f"No lever meets the target {metric} ≥ {_f(threshold)}: every one fails it at {pct}% confidence "
                "(its one-sided upper bound is below the target)")
    reason = (f"{lead}. The closest is {closest.name} at {_f(m.value)} ({_f(m.ci_low)}–{_f(m.ci_high)}). "
              f"Next: {step}.")
    return Verdict(verdicts, VerdictRecord(outcome="none", reason=reason, closest=closest.name, next_step=step,
                                           ranking=names, notes=notes, comparisons=comparisons, break_even=pairs,
                                           reasons=reasons))


def _cleaning(r: LeverEvidence, ranked: Sequence[LeverEvidence],
              compare: Callable[[LeverEvidence, LeverEvidence], Comparison]) -> tuple[list[Comparison], str] | None:
    """Whether cleaning the data is worth more than the next lever up, for a row trained on cleaned data
    (`r.curation`): its paired comparisons with its plain row and with the cheapest-rung row above that
    (on the same model), and one sentence that says what they show. None: its plain row was not run."""
    assert r.curation is not None
    plain = next((p for p in ranked if p.name == r.curation.plain_row), None)
    if plain is None:
        return None
    alias = r.name.partition("@")[2]
    above = [p for p in ranked if p.rung > plain.rung and p.curation is None and p.name.partition("@")[2] == alias]
    nxt = min(above, key=lambda p: p.rung) if above else None  # ties: the cheaper in the first year (ranked)
    vs_plain = compare(r, plain)
    vs_next = compare(r, nxt) if nxt is not None else None
    shown = ("significantly better than" if vs_plain.significantly_better else
             "significantly worse than" if vs_plain.significantly_worse else "not shown different from")
    gain = (f"{shown} {plain.name} ({vs_plain.difference.value:+.3f}, interval {vs_plain.difference.ci_low:+.3f} to "
            f"{vs_plain.difference.ci_high:+.3f})")
    if vs_next is None or nxt is None:
        verdict = (f"cleaning the data is {gain}; no lever above {plain.name} was run, so it is weighed against "
                   f"{plain.name} only")
    else:
        d = vs_next.difference
        vs = f"{d.value:+.3f}, interval {d.ci_low:+.3f} to {d.ci_high:+.3f}"
        a, b = r.cost.first_year_usd, nxt.cost.first_year_usd
        extra = None if a is None or b is None else a - b
        cost = "" if extra is None else f", at ${abs(extra):,.2f} {'less' if extra <= 0 else 'more'} in the first year"
        if vs_next.significantly_better:
            verdict = (f"cleaning the data is worth more than the next lever up, {nxt.name}: {r.name} scores "
                       f"significantly higher ({vs}){cost}; and it is {gain}")
        elif vs_next.significantly_worse:
            verdict = (f"the next lever up, {nxt.name}, is worth more than cleaning the data: it scores significantly "
                       f"higher than {r.name} ({vs}); cleaning alone is {gain}")
        else:
            verdict = (f"cleaning the data is not shown better or worse than the next lever up, {nxt.name} ({vs})"
                       f"{cost}; and it is {gain}")
    who = ("dropped automatically; a person's review of each is priced" if r.curation.reviewed else
           "dropped automatically, no review assumed")
    said = (f"Cleaning the data ({r.name}: {plain.name}'s training without {r.curation.dropped} suspected label "
            f"error(s), {who}): {verdict}. " + " ".join(c.message for c in (vs_plain, vs_next) if c is not None))
    return [vs_plain] + ([vs_next] if vs_next is not None else []), said


def _with_grades(r: LeverEvidence, metric: str) -> LeverEvidence:
    """A row whose target is a rubric criterion, with the criterion's grades as its per-item target scores
    (None unscored: paired comparisons use the items both rows have scored) and a metric placeholder
    (0 to 1) where the judge scored none of its outputs."""
    ev = r.criterion
    if ev is None:
        return r
    from dataclasses import replace

    metrics = dict(r.metrics)
    if metric not in metrics:
        metrics[metric] = MetricRecord(value=ev.rate if ev.rate is not None else 0.0, ci_low=0.0, ci_high=1.0)
    return replace(r, per_item={**r.per_item, metric: list(ev.grades)}, metrics=metrics)


def _why_short(r: LeverEvidence, v: LeverVerdict, metric: str, threshold: float, pct: int) -> str:
    m = r.metrics[metric]
    head = f"{r.name}: {metric} {_f(m.value)} ({pct}% interval {_f(m.ci_low)}–{_f(m.ci_high)})"
    if v.no_better_than_baseline:
        return (f"{head} is no better than guessing: not significantly above the trivial baseline "
                f"(and {v.state} against the target); never recommended")
    if v.basis:
        return f"{head} is {v.state}: {v.basis}"
    if v.state == "fails":
        return f"{head} fails: even its one-sided upper bound {_f(v.upper_bound)} is below the target {_f(threshold)}"
    if v.state == "undecided":
        return (f"{head} is undecided: the target {_f(threshold)} lies inside its one-sided bounds "
                f"({_f(v.lower_bound)}–{_f(v.upper_bound)}); {more_items_text(v, r.n_eval, metric)}")
    return f"{head} meets the target"
