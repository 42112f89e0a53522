"""Choosing a label through a chat API, which gives log-probabilities only for generated tokens.

A chat API cannot score a given continuation (llama.cpp's server accepts `echo` and ignores
it), so the local backend's option ranking is out of reach. Three paths, in order of preference:

1. `first_token_logprobs`: one generated token with `top_logprobs`; each label is scored by the
   tokens that begin it and only it. Needs every label to start with a distinct token.
2. `json_schema_enum`: the answer constrained to the label set by a top-level JSON-schema enum in
   `response_format` (an enum nested in an object can run away on whitespace, so `finish_reason`
   is checked).
3. `generate_and_map`: free text mapped to a label (exact, then in `canonical_text` form); an answer
   that maps to no label counts as wrong and is counted as unmappable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from advisor.textnorm import canonical_text

TOP_LOGPROBS = 20  # the most the OpenAI API returns per position


def _fold(text: str) -> str:
    return canonical_text(text)


def distinct_first_tokens(labels: list[str], tokenize: Callable[[str], list[int]] | None) -> bool:
    """Whether every label begins with its own token. Without a tokenizer, labels whose first
    characters differ qualify (a first token holds at least the first character)."""
    if tokenize is not None:
        firsts = [tuple(tokenize(lab)[:1]) for lab in labels]
        return all(firsts) and len(set(firsts)) == len(firsts)
    firsts_c = [lab.strip()[:1] for lab in labels]
    return all(firsts_c) and len(set(firsts_c)) == len(firsts_c)


def rank_top_logprobs(top: list[tuple[str, float]], labels: list[str]) -> tuple[str | None, list[float | None]]:
    """(best label or None, a log-probability per label) from the first token's top alternatives.

    A token counts for a label when, stripped of spaces, it is a non-empty prefix of that label and
    of no other (compared case-folded when no exact prefix matches). A label's score is the log of
    the summed probability of its tokens; None when none of its tokens is among the top ones.
    """
    mass: list[float] = [0.0] * len(labels)
    for token, logprob in top:
        piece = token.strip()
        if not piece:
            continue
        hits = [j for j, lab in enumerate(labels) if lab.startswith(piece)]
        if not hits:
            hits = [j for j, lab in enumerate(labels) if lab.casefold().startswith(piece.casefold())]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(logprob)
    scores: list[float | None] = [math.log(m) if m > 0 else None for m in mass]
    if all(s is None for s in scores):
        return None, scores
    best = max(range(len(labels)), key=lambda j: scores[j] if scores[j] is not None else -math.inf)
    return labels[best], scores


def map_to_label(text: str, labels: list[str]) -> str | None:
    """The label `text` names: exact, then in `canonical_text` form (case, spacing, Unicode forms,
    curly quotes folded), else None (unmappable)."""
    stripped = text.strip().strip("\"'`.").strip()
    if stripped in labels:
        return stripped
    folded = {_fold(lab): lab for lab in labels}
    return folded.get(_fold(stripped).strip("\"'`.").strip())


def enum_format(labels: list[str]) -> dict[str, Any]:
    """`response_format` that keeps the answer to one of `labels` (a top-level enum)."""
    return {"type": "json_schema",
            "json_schema": {"name": "label", "strict": True, "schema": {"type": "string", "enum": labels}}}


def parse_enum_answer(text: str, finish_reason: str | None, labels: list[str]) -> str | None:
    """The label of a JSON-schema-enum answer, or None when it was cut short or is not a label.

    A grammar allows whitespace after the value, and a model can run on there until its budget ends
    (finish_reason "length", measured with llama.cpp's server): the value itself is whole then, so
    it counts; a value cut before its closing quote does not parse and is unmappable.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return map_to_label(text, labels) if finish_reason == "stop" else None
    return value if isinstance(value, str) and value in labels else None
