"""How a classification answer is chosen among the task's labels from per-token log-likelihoods.

A backend that can score text (the local transformers backend) computes, for each request,
the log-probability of every token of every option (the label's tokens plus end-of-turn)
after the prompt, and - for the calibrated methods - after the same prompt with a
content-free input. This module turns those numbers into a ranking; every method ranks the
same numbers, so the alternatives cost nothing extra and are recorded beside the answer
(`alternatives`), which is how a run measures how much its predictions rest on the method.

Measured on SmolLM2-135M (README, "Label ranking"; `bench/option_ranking.py`): `calibrated`
is the most accurate on TREC (300 eval items, the sample task's prompt: 0.290 zero-shot and
0.410 with 6 shots, against 0.290 / 0.307 for `sum`); `calibrated_prefix` is the one whose
prediction does not move when a label is spelled longer after the point where the labels
part (field case 07: 0 of 16 predictions change, against 8 for `calibrated` and 16 for
`sum`), but it loses accuracy on TREC's short codes (0.200 / 0.273), whose later tokens the
model uses to recognise the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

# Methods that need the log-probabilities after the content-free prompt.
NEEDS_REFERENCE = frozenset({"calibrated", "calibrated_prefix"})


def distinguishing_lengths(option_ids: list[list[int]]) -> list[int]:
    """Per option, the number of its tokens up to and including the first one that no other
    option shares at that position (its shortest prefix that is no other option's prefix).

    `option_ids[j]`: option j's token ids *with* the end-of-turn token, so an option that is a
    prefix of another ("yes" / "yes, but") is told apart by its end-of-turn. Identical options
    get their whole length.
    """
    out = []
    for j, ids in enumerate(option_ids):
        others = [o for k, o in enumerate(option_ids) if k != j]
        n = next((n for n in range(1, len(ids) + 1) if not any(o[:n] == ids[:n] for o in others)), len(ids))
        out.append(n)
    return out


def rank_options(
    method: str, logps: list[list[float]], reference: list[list[float]] | None, option_ids: list[list[int]]
) -> tuple[list[float], list[tuple[float, float]]]:
    """Scores of each option under `method`, and the key the best option maximises.

    `logps[j]`: per-token log-probabilities (natural log) of option j - its tokens plus
    end-of-turn - after the prompt; `reference[j]`: the same after the content-free prompt
    (methods in NEEDS_REFERENCE only); `option_ids[j]`: option j's token ids with end-of-turn.
    Raises ValueError for an unknown method or a calibrated one without `reference`.

    - `sum`: log P(option | prompt). Every extra token costs probability, so it favours short labels.
    - `mean`: the sum divided by the option's token count (length normalisation).
    - `calibrated`: log P(option | prompt) - log P(option | content-free prompt): contextual
      calibration (Zhao et al. 2021, "Calibrate before use") in log space, which divides out
      the prior a label's wording and length give it.
    - `calibrated_prefix`: the same, over each option's distinguishing prefix only (see
      `distinguishing_lengths`): the tokens after the point where the options part decide
      nothing under constrained decoding, so a label's spelling after that point cannot move
      the prediction.
    - `first_token`: log P(first token | prompt); options sharing a first token are told apart
      by their sum (the first token decides the group, the rest the member).
    """
    sums = [sum(lp) for lp in logps]
    if method in NEEDS_REFERENCE and reference is None:
        raise ValueError(f"{method} ranking needs the content-free log-probabilities")
    if method == "sum":
        scores = sums
    elif method == "mean":
        scores = [s / len(lp) for s, lp in zip(sums, logps)]
    elif method == "calibrated":
        scores = [s - sum(ref) for s, ref in zip(sums, reference or [])]
    elif method == "calibrated_prefix":
        lengths = distinguishing_lengths(option_ids)
        scores = [sum(lp[:n]) - sum(ref[:n]) for lp, ref, n in zip(logps, reference or [], lengths)]
    elif method == "first_token":
        scores = [lp[0] for lp in logps]
        firsts = [ids[0] for ids in option_ids]
        shared = {t for t in firsts if firsts.count(t) > 1}
        return scores, [(sc, s if t in shared else 0.0) for sc, s, t in zip(scores, sums, firsts)]
    else:
        raise ValueError(f"unknown option ranking '{method}'")
    return scores, [(sc, 0.0) for sc in scores]


def best_option(method: str, logps: list[list[float]], reference: list[list[float]] | None,
                option_ids: list[list[int]]) -> tuple[int, list[float]]:
    """(index of the option `method` ranks first, its scores); see `rank_options`."""
    scores, key = rank_options(method, logps, reference, option_ids)
    return max(range(len(key)), key=lambda j: key[j]), scores


def alternatives(methods: tuple[str, ...], chosen: str, options: list[str], logps: list[list[float]],
                 reference: list[list[float]] | None, option_ids: list[list[int]]) -> dict[str, str]:
    """The option every other method in `methods` would pick from the same log-probabilities
    (method -> option); methods needing a reference are left out when there is none."""
    return {m: options[best_option(m, logps, reference, option_ids)[0]] for m in methods
            if m != chosen and (reference is not None or m not in NEEDS_REFERENCE)}


# -- the method of each lever row ------------------------------------------------------------------

AUTO = "auto"


def natural_method(lever: object) -> str:
    """The method a lever row starts from under `scoring.option_ranking: auto`: the lever's
    declared `option_ranking` (LoRA levers: `sum`, the objective their adapter was trained on),
    else `calibrated` (contextual calibration, for the base model's prompts)."""
    from advisor.types import DEFAULT_OPTION_RANKING

    return lever.option_ranking or DEFAULT_OPTION_RANKING  # type: ignore[attr-defined]


def answers_by_method(prediction: Any) -> dict[str, str] | None:
    """method -> the option it picks, for one prediction (advisor.types.Prediction): the method
    the backend ranked by (`ranked_by`, its pick in `raw`, or `ranked_raw` once `with_method`
    changed it) plus `ranking_alternatives`. None when the backend did not record them (an API
    model, or an answer stored before they were)."""
    ctx = prediction.context
    alts, used = ctx.get("ranking_alternatives"), ctx.get("ranked_by")
    if not isinstance(alts, dict) or not used:
        return None
    return {**alts, used: ctx.get("ranked_raw", prediction.raw)}


def with_method(prediction: Any, method: str, parse: Callable[[str], Any]) -> Any:
    """The prediction as `method` would have answered it, from the same log-likelihoods.

    `parse(raw) -> output` (advisor.scoring.parse_output for the task). The compute seconds
    follow the method: the content-free pass is counted only when the method needs it.
    Raises KeyError when the prediction did not record `method`'s pick.
    """
    if prediction.context.get("option_ranking") == method:
        return prediction  # already under `method`: applying it again changes nothing
    answers = answers_by_method(prediction)
    if answers is None or method not in answers:
        raise KeyError(f"no answer under {method!r} recorded for item {prediction.example_id}")
    # The seconds move from the method the prediction is under now (the backend's, or one applied before).
    current = prediction.context.get("option_ranking", prediction.context["ranked_by"])
    share = float(prediction.context.get("reference_seconds") or 0.0)
    seconds = prediction.seconds + share * ((method in NEEDS_REFERENCE) - (current in NEEDS_REFERENCE))
    context = {**prediction.context, "option_ranking": method,
               "ranked_raw": prediction.context.get("ranked_raw", prediction.raw)}
    # An answer the backend found to be no label stays unscored under every method (never re-mapped).
    output = None if prediction.context.get("unmappable") else parse(answers[method])
    return replace(prediction, output=output, raw=answers[method], seconds=max(seconds, 0.0), context=context)
