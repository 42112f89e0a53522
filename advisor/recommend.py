"""Verdict v1: the cheapest lever whose point estimate meets the target.

Levers are ranked by first-year cost (setup plus twelve months at the stated
volume), ties broken by their rung on the ladder. The interval is shown beside
the point estimate so a reader sees how sure the call is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "lever": self.lever,
            "reason": self.reason,
            "closest": self.closest,
            "next_step": self.next_step,
            "ranking": self.ranking,
            "notes": self.notes,
        }


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def recommend(levers: list[dict[str, Any]], metric: str, threshold: float, has_knowledge: bool = True,
              curves: dict[str, dict[str, Any]] | None = None) -> Verdict:
    """`levers` are results.json lever entries (name, rung, metrics, cost, meets_target).

    `has_knowledge`: whether the task has a knowledge base (it shapes the next-step advice).
    `curves`: results.json `learning_curves` (lever name -> curve with its `message`), if measured.
    """
    if not levers:
        return Verdict(None, "No lever was run.")
    # An unknown price (null) cannot be ranked on cost: such rows go last and a note says so.
    ranked = sorted(levers, key=lambda lv: (lv["cost"]["first_year_usd"] is None, lv["cost"]["first_year_usd"] or 0,
                                            lv.get("rung", 99)))
    names = [lv["name"] for lv in ranked]
    notes = [n for lv in ranked if not lv["meets_target"] for n in [diagnose(lv)] if n]
    notes += [f"{lv['name']}: price unknown, so it could not be ranked on cost (add it under `prices:`)"
              for lv in ranked if lv["cost"]["first_year_usd"] is None]
    passing = [lv for lv in ranked if lv["meets_target"]]
    if passing:
        best = passing[0]
        m = best["metrics"][metric]
        cheaper = ranked[: ranked.index(best)]
        parts = [
            f"{best['name']} reaches {metric} {_fmt(m['value'])} "
            f"({int(round(100 * best['confidence']))}% interval {_fmt(m['ci_low'])}–{_fmt(m['ci_high'])}) "
            f"against a target of {_fmt(threshold)} on {best['n_eval']} held-out items",
            (f"at ${best['cost']['per_1k_queries_usd']:.4f} per 1,000 queries "
             if best["cost"]["per_1k_queries_usd"] is not None else "at an unknown price per query ")
            + f"and ${best['cost']['setup_usd']:.2f} to set up",
        ]
        if cheaper:
            parts.append(
                "the cheaper "
                + ", ".join(f"{lv['name']} ({_fmt(lv['metrics'][metric]['value'])})" for lv in cheaper)
                + " fell short"
            )
        if m["ci_low"] < threshold:
            parts.append(
                "the interval's low end is below the target, so collect more eval items "
                "before relying on it"
            )
        return Verdict(best["name"], "; ".join(parts) + ".", ranking=names, notes=notes)

    closest = max(ranked, key=lambda lv: lv["metrics"][metric]["value"])
    m = closest["metrics"][metric]
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
    return Verdict(None, reason, closest=closest["name"], next_step=step, ranking=names, notes=notes)
