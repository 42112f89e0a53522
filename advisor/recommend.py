"""The verdict: the cheapest lever that meets the target, by a rule the task chooses.

Each lever is in one of three states (advisor.verdict_rules): meets, fails, or undecided
with the eval items that would settle it. Levers are ranked by first-year cost (setup
plus twelve months at the stated volume), ties broken by their rung; a prompt-family
lever that meets the target is preferred to any retrieval or fine-tuning lever whatever
their cost; a cheaper lever that is not worse than the chosen one by more than
`target.margin` (paired, one-sided) is preferred to it; a lever not significantly
better than the trivial baseline is never recommended. Every step is said in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advisor.registry import lever_family
from advisor.stats import paired_difference

LADDER = ["prompt", "prompt-few-shot", "rag", "lora", "lora-rag"]


def next_step(rung: str | None, has_knowledge: bool, curve: str | None = None) -> str:
    """What to try after `rung` (the highest rung run) when nothing run so far meets the target.

    Without a knowledge base the retrieval levers retrieve similar labelled
    train examples, so the advice says that rather than promising documents.
    `curve` is what a measured learning curve said ("lora's learning curve: the fit
    says ..."); it replaces the suggestion to measure one.
    """
    retrieved = "passages from the knowledge base" if has_knowledge else "the most similar labelled train examples"
    measure = "run with --learning-curve to see how many training examples the target needs"
    more_data = curve or measure
    steps = {
        None: "a lever from the ladder: prompt first",
        "prompt": "prompt-few-shot: show labelled train examples in the prompt",
        "prompt-few-shot": f"rag: put {retrieved} into the prompt per query",
        "rag": "lora: fine-tune an adapter on the train set",
        "lora": f"lora-rag: the fine-tuned adapter with {retrieved} in the prompt"
        + (f" ({curve})" if curve else f"; or {measure}"),
        "lora-rag": f"more or cleaner training data ({more_data}), or a larger base model",
    }
    return steps[rung]


FORMAT_FIX = "a format miss (show the format with examples, or fine-tune for it)"


def _value(lv: dict[str, Any], name: str) -> float | None:
    m = lv["metrics"].get(name)
    return None if m is None else m["value"]


def diagnose(lever: dict[str, Any]) -> str | None:
    """Where a lever that fell short loses its points, read off the metrics it already has.

    Retrieval miss (the gold source is not retrieved), reading miss (it is, but the
    answer is wrong), format miss (the right answer is there, not in the asked form).
    Each points at a different fix, which one headline number cannot.
    """
    name = lever["name"]
    recall = next((m["value"] for k, m in lever["metrics"].items() if k.startswith("retrieval_recall@")), None)
    contains, exact, valid = _value(lever, "contains"), _value(lever, "exact_match"), _value(lever, "json_valid")
    found: list[str] = []
    if recall is not None and recall < 0.8:
        found.append(
            f"the gold source is retrieved for only {recall:.0%} of questions: a retrieval miss "
            "(try chunking, k or the embedding model before the generator)"
        )
    elif recall is not None and contains is not None and contains < recall - 0.2:
        found.append(
            f"the gold source is retrieved for {recall:.0%} of questions but the right answer appears in only "
            f"{contains:.0%} of outputs: a reading miss (the model does not use what it is given)"
        )
    if contains is not None and exact is not None and contains - exact >= 0.1:
        lead = "" if found else f"the right answer appears in {contains:.0%} of outputs but "
        found.append(f"{lead}only {exact:.0%} match exactly: {FORMAT_FIX}")
    if valid is not None and valid < 0.95:
        found.append(f"only {valid:.0%} of outputs are valid JSON objects: {FORMAT_FIX}")
    return f"{name}: " + "; ".join(found) + "." if found else None


@dataclass
class Verdict:
    lever: str | None
    reason: str
    closest: str | None = None
    next_step: str | None = None
    ranking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rule: str = "point"
    margin: float = 0.0
    states: dict[str, str] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    break_even: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lever": self.lever,
            "reason": self.reason,
            "closest": self.closest,
            "next_step": self.next_step,
            "ranking": self.ranking,
            "notes": self.notes,
            "rule": self.rule,
            "margin": self.margin,
            "states": self.states,
            "comparisons": self.comparisons,
            "break_even": self.break_even,
            "reasons": self.reasons,
        }


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _state(lv: dict[str, Any]) -> str:
    return str(lv.get("state") or ("meets" if lv["meets_target"] else "fails"))


def _more_items(lv: dict[str, Any]) -> str:
    need = lv.get("items_needed")
    if need is None:
        return "no eval size settles it at the observed rate (it sits on the threshold)"
    return (f"about {need:,} more eval items ({need + lv['n_eval']:,} in all) would settle it "
            f"({POWER_NOTE})")


POWER_NOTE = "power calculation: one-sided test against the threshold at the observed rate, 80% power"


def _why_short(lv: dict[str, Any], metric: str, threshold: float, pct: int) -> str:
    m = lv["metrics"][metric]
    state = _state(lv)
    head = f"{lv['name']}: {metric} {_fmt(m['value'])} ({pct}% interval {_fmt(m['ci_low'])}–{_fmt(m['ci_high'])})"
    if lv.get("no_better_than_baseline"):
        return f"{head} is no better than guessing: not significantly above the trivial baseline; never recommended"
    if state == "fails":
        upper = lv.get("upper_bound", m["ci_high"])
        return f"{head} fails: even its upper bound {_fmt(upper)} is below the target {_fmt(threshold)}"
    if state == "undecided":
        low = lv.get("lower_bound", m["ci_low"])
        return (f"{head} is undecided: the target {_fmt(threshold)} lies inside its bounds "
                f"({_fmt(low)}–{_fmt(lv.get('upper_bound', m['ci_high']))}); {_more_items(lv)}")
    return f"{head} meets the target"


def _combination(ranked: list[dict[str, Any]], chosen: dict[str, Any] | None) -> str | None:
    """The combination the evidence supports, when retrieval and fine-tuning each fixed one part."""
    fam = {lv["name"]: lever_family(lv) for lv in ranked}
    notes = {lv["name"]: diagnose(lv) or "" for lv in ranked}
    retrieval_finds = [n for n in fam if fam[n] == "retrieval" and "reading miss" in notes[n]]
    format_misses = [n for n in fam if fam[n] != "fine-tuning" and "format miss" in notes[n]]
    tuned = [lv for lv in ranked if fam[lv["name"]] == "fine-tuning"]
    combined = [lv for lv in tuned if "rag" in lv["name"]]
    if chosen is not None and chosen in combined and (retrieval_finds or format_misses):
        return (f"{chosen['name']}: fine-tuned for the format, fed by retrieval for the facts — retrieval alone "
                f"found the sources ({', '.join(retrieval_finds or format_misses)}) but the base model did not "
                "use them in the asked form")
    if tuned and not combined and (retrieval_finds or format_misses):
        return ("the evidence supports a combination: fine-tune for the format and feed the facts by retrieval "
                "(lora-rag), since " + ", ".join(retrieval_finds or format_misses) + " lost points on form, "
                "not on finding the facts")
    return None


def recommend(levers: list[dict[str, Any]], metric: str, threshold: float, has_knowledge: bool = True,
              curves: dict[str, dict[str, Any]] | None = None, *, rule: str = "point", margin: float = 0.0,
              confidence: float = 0.95, per_item: dict[str, list[float]] | None = None,
              groups: list[Any] | None = None, seed: int = 0) -> Verdict:
    """Pick a lever from results.json lever entries (name, rung, metrics, cost, meets_target and,
    when assessed by `advisor.verdict_rules.judge_run`: state, bounds, items_needed,
    no_better_than_baseline).

    `has_knowledge`: whether the task has a knowledge base (it shapes the next-step advice).
    `curves`: results.json `learning_curves` (lever name -> curve with its `message`), if measured.
    `per_item`: lever name -> per-item scores of `metric` on the same eval items in the same
    order; with it, levers are compared pairwise (paired bootstrap, McNemar) and `margin`
    applies (non-inferiority). `groups`: one group label per eval item (cluster resampling).
    """
    if not levers:
        return Verdict(None, "No lever was run.", rule=rule, margin=margin)
    pct = int(round(100 * confidence))
    # An unknown price (null) cannot be ranked on cost: such rows go last and a note says so.
    ranked = sorted(levers, key=lambda lv: (lv["cost"]["first_year_usd"] is None, lv["cost"]["first_year_usd"] or 0,
                                            lv.get("rung", 99)))
    names = [lv["name"] for lv in ranked]
    states = {lv["name"]: _state(lv) for lv in ranked}
    notes = [n for lv in ranked if states[lv["name"]] != "meets" for n in [diagnose(lv)] if n]
    notes += [f"{lv['name']}: price unknown, so it could not be ranked on cost (add it under `prices:`)"
              for lv in ranked if lv["cost"]["first_year_usd"] is None]
    usable = [lv for lv in ranked if not lv.get("no_better_than_baseline")]
    eligible = [lv for lv in usable if states[lv["name"]] == "meets"]
    prompt_family = [lv for lv in eligible if lever_family(lv) == "prompt"]
    pool = prompt_family or eligible  # a prompt that meets the target beats retrieval/fine-tuning at any cost
    best = pool[0] if pool else None
    reasons: list[str] = []
    paired = per_item is not None and all(lv["name"] in per_item for lv in ranked)

    def compare(lv: dict[str, Any], against: dict[str, Any]) -> dict[str, Any]:
        a, b = per_item[lv["name"]], per_item[against["name"]]  # type: ignore[index]
        shown = paired_difference(a, b, confidence, groups=groups, seed=seed)
        one_sided = paired_difference(a, b, 2 * confidence - 1, groups=groups, seed=seed)
        better = one_sided.low > 0
        non_inferior = one_sided.low > -margin
        costs = (lv["cost"]["first_year_usd"], against["cost"]["first_year_usd"])
        extra = None if None in costs else costs[0] - costs[1]
        p = f", McNemar exact p={shown.mcnemar_p:.3g}" if shown.mcnemar_p is not None else ""
        diff = (f"{lv['name']} − {against['name']} = {shown.value:+.3f} ({pct}% paired interval "
                f"{shown.low:+.3f} to {shown.high:+.3f}{p})")
        if extra is None:
            verdict = "its first-year cost cannot be compared (a price is unknown)"
        elif extra > 0:
            worth = ("it is significantly better" if better else "it is not significantly better")
            verdict = (f"{worth}, and {against['name']} already meets the target: the extra "
                       f"${extra:,.2f} in the first year buys nothing the target asks for"
                       if states[against["name"]] == "meets" else f"{worth} at ${extra:,.2f} more in the first year")
        else:
            verdict = ("not worse by more than the margin" if non_inferior else
                       f"worse by more than the margin {margin:g}") + f", ${-extra:,.2f} cheaper in the first year"
        return {"lever": lv["name"], "against": against["name"], "metric": metric,
                "difference": shown.as_dict(), "mcnemar_p": shown.mcnemar_p, "significantly_better": better,
                "non_inferior": non_inferior, "message": f"{diff}: {verdict}."}

    # Non-inferiority: a cheaper lever within the margin of the chosen one is preferred to it.
    if best is not None and paired:
        family_only = lever_family(best) == "prompt"
        for lv in usable[: usable.index(best)]:
            if states[lv["name"]] == "fails" or (family_only and lever_family(lv) != "prompt"):
                continue
            c = compare(lv, best)
            if c["non_inferior"] and margin > 0:
                reasons.append(f"{lv['name']} is preferred to {best['name']}: not worse by more than the margin "
                               f"{margin:g} and cheaper ({c['message']})")
                best = lv
                break

    against = best or (max(usable or ranked, key=lambda lv: lv["metrics"][metric]["value"]))
    comparisons = [compare(lv, against) for lv in ranked if lv is not against] if paired else []
    from advisor.costs import break_even

    pairs = break_even(eligible)
    cheaper = ranked[: ranked.index(best)] if best is not None else ranked
    reasons += [_why_short(lv, metric, threshold, pct) for lv in cheaper if lv is not best]
    reasons += [n for lv in cheaper for n in [diagnose(lv)] if n and states[lv["name"]] != "meets"]
    if best is not None:
        if best in prompt_family and len(eligible) > len(prompt_family):
            reasons.append(f"{best['name']} is a prompt: it is preferred to the retrieval and fine-tuning levers "
                           "that also meet the target, whatever their cost (nothing to index, train or retrain)")
        reasons += [c["message"] for c in comparisons
                    if c["lever"] not in {lv["name"] for lv in cheaper} and c["lever"] != best["name"]]
    reasons += [b["message"] for b in pairs]
    combo = _combination(ranked, best)
    if combo:
        reasons.append(combo)

    if best is not None:
        m = best["metrics"][metric]
        low = best.get("lower_bound", m["ci_low"])
        parts = [
            f"{best['name']} reaches {metric} {_fmt(m['value'])} "
            f"({pct}% interval {_fmt(m['ci_low'])}–{_fmt(m['ci_high'])}) "
            f"against a target of {_fmt(threshold)} on {best['n_eval']} held-out items",
            (f"at ${best['cost']['per_1k_queries_usd']:.4f} per 1,000 queries "
             if best["cost"]["per_1k_queries_usd"] is not None else "at an unknown price per query ")
            + f"and ${best['cost']['setup_usd']:.2f} to set up",
        ]
        short = [lv for lv in cheaper if lv is not best]
        if short:
            parts.append("the cheaper " + ", ".join(f"{lv['name']} ({_fmt(lv['metrics'][metric]['value'])})"
                                                   for lv in short) + " fell short")
        if rule == "lower_bound" and states[best["name"]] == "meets":
            parts.append(f"its one-sided {pct}% lower bound {_fmt(low)} clears the target")
        elif m["ci_low"] < threshold:
            parts.append("the interval's low end is below the target, so collect more eval items "
                         "before relying on it")
        return Verdict(best["name"], "; ".join(parts) + ".", ranking=names, notes=notes, rule=rule, margin=margin,
                       states=states, comparisons=comparisons, break_even=pairs, reasons=reasons)

    closest = against
    m = closest["metrics"][metric]
    undecided = [lv for lv in usable if states[lv["name"]] == "undecided"]
    if undecided:
        lead = max(undecided, key=lambda lv: lv["metrics"][metric]["value"])
        step = f"collect more eval items for {lead['name']}: {_more_items(lead)}"
        reason = (f"Undecided: no lever is shown to meet {metric} ≥ {_fmt(threshold)} at {pct}% confidence. "
                  f"{lead['name']} scores {_fmt(lead['metrics'][metric]['value'])} but its one-sided lower bound "
                  f"is {_fmt(lead.get('lower_bound', lead['metrics'][metric]['ci_low']))}; "
                  f"{_more_items(lead)}.")
        return Verdict(None, reason, closest=lead["name"], next_step=step, ranking=names, notes=notes, rule=rule,
                       margin=margin, states=states, comparisons=comparisons, break_even=pairs, reasons=reasons)
    rungs = [LADDER.index(lv["name"]) for lv in levers if lv["name"] in LADDER]
    top = LADDER[max(rungs)] if rungs else None
    curves = curves or {}
    name = top if top in curves else closest["name"]  # the top rung's curve, else the closest lever's
    said = curves.get(name)
    step = next_step(top, has_knowledge, f"{name}'s learning curve: {said['message']}" if said else None)
    reason = (
        f"No lever meets the target {metric} ≥ {_fmt(threshold)}. The closest is {closest['name']} at "
        f"{_fmt(m['value'])} ({_fmt(m['ci_low'])}–{_fmt(m['ci_high'])}). Next: {step}."
    )
    return Verdict(None, reason, closest=closest["name"], next_step=step, ranking=names, notes=notes, rule=rule,
                   margin=margin, states=states, comparisons=comparisons, break_even=pairs, reasons=reasons)
