"""Choosing a label through a chat API, which gives log-probabilities only for generated tokens.

A chat API cannot score a given continuation (llama.cpp's server accepts `echo` and ignores
it), so the local backend's whole-label ranking is out of reach. Three paths; a run tries the ones
the server supports on the lever's held-out items and keeps the best (advisor.measure.choose_path):

1. `first_token_logprobs`: one generated token with `top_logprobs`. A label is credited only with
   the tokens that really begin it, as the model's own tokenizer splits it (`LabelTokens`: the
   server's `/tokenize`, or a local tokenizer); string matching is the fallback, marked
   approximate. Needs every label to begin with a token of its own. Every ranking method of
   advisor/ranking.py applies, over the first token (`first_token_choice`; contextual calibration
   from a content-free request). The token the model itself put first is recorded, and an item
   where it is not a label token is *off-label*: the label is then the constrained choice among
   label tokens, which a deployment gets only by constraining the same way.
2. `json_schema_enum`: the answer constrained to the label set by a top-level JSON-schema enum in
   `response_format` (an enum nested in an object can run away on whitespace, so `finish_reason`
   is checked, and a code fence around the value is allowed for).
3. `generate_and_map`: free text mapped to a label (exact, then in `canonical_text` form); an
   answer that maps to no label is unmappable, counted, and scored wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.textnorm import canonical_text

TOP_LOGPROBS = 20  # the most the OpenAI API returns per position
PATHS = ("first_token_logprobs", "json_schema_enum", "generate_and_map")  # in order of cost
ENUM_SLACK_TOKENS = 16  # room in a JSON-enum answer for a code fence, a newline and trailing spaces

# tokenize(text) -> [(token id or None, the token's text)], as the model splits `text` with no special tokens.
Tokenize = Callable[[str], list[tuple[int | None, str]]]


def _fold(text: str) -> str:
    return canonical_text(text)


@dataclass(frozen=True)
class LabelTokens:
    """Which first tokens stand for which label (index into `labels`).

    `ids`/`pieces`: the first token of each label, and of the label after a space (a model may
    answer " LOC"), by id and by text. `exact`: from the model's tokenizer (`source` says which);
    False: no tokenizer was available and a token counts when, stripped of spaces, it is a prefix
    of one label only (case kept), which can credit a word's first letters to a label.
    """

    labels: tuple[str, ...]
    source: str
    exact: bool
    ids: dict[int, int] = field(default_factory=dict)
    pieces: dict[str, int] = field(default_factory=dict)

    def label_of(self, token: str, token_id: int | None = None) -> int | None:
        """The label index `token` (its text, and id when the server gives one) stands for, or None."""
        if self.exact:
            if token_id is not None and self.ids:
                return self.ids.get(token_id)
            return self.pieces.get(token)
        piece = token.strip()
        hits = [j for j, lab in enumerate(self.labels) if piece and lab.startswith(piece)]
        return hits[0] if len(hits) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        """For the record: where the label tokens came from and each label's first token."""
        firsts = {self.labels[j]: p for p, j in self.pieces.items() if not p.startswith(" ")}
        return {"source": self.source, "exact": self.exact, "first_tokens": firsts}


def label_tokens(labels: Sequence[str], tokenize: Tokenize | None, source: str) -> LabelTokens | None:
    """The labels' first tokens by `tokenize` (the model's tokenizer), or None when two labels
    begin with the same token (the first token cannot tell them apart). Without a tokenizer:
    the approximate string-prefix rule (see LabelTokens), None when two labels share a first
    character."""
    found = first_tokens(tuple(labels), tokenize, source)
    return found if isinstance(found, LabelTokens) else None


def first_token_clash(labels: Sequence[str], tokenize: Tokenize | None) -> str | None:
    """Why `label_tokens` finds no first-token reading of `labels`, in words (which labels begin
    with the same token), or None when it finds one."""
    found = first_tokens(tuple(labels), tokenize, "")
    return found if isinstance(found, str) else None


def first_tokens(labels: tuple[str, ...], tokenize: Tokenize | None, source: str) -> LabelTokens | str:
    """`label_tokens`' reading, or why there is none (`first_token_clash`), from one tokenization."""
    if tokenize is None:
        firsts = [lab.strip()[:1] for lab in labels]
        for j, f in enumerate(firsts):
            if not f or f in firsts[:j]:
                other = labels[firsts.index(f)] if f else ""
                return f"{other!r} and {labels[j]!r} begin with the same character {f!r}" if f else \
                    f"label {labels[j]!r} is blank"
        return LabelTokens(labels, "approximate: string prefixes (no tokenizer)", exact=False)
    ids: dict[int, int] = {}
    pieces: dict[str, int] = {}
    for j, lab in enumerate(labels):
        for form in (lab, " " + lab):
            toks = tokenize(form)
            if not toks:
                return f"label {lab!r} has no tokens"
            tid, piece = toks[0]
            k = pieces.get(piece, ids.get(tid, j) if tid is not None else j)
            if k != j:
                return f"{labels[k]!r} and {lab!r} begin with the same token {piece.strip()!r}"
            pieces[piece] = j
            if tid is not None:
                ids[tid] = j
    return LabelTokens(labels, source, exact=True, ids=ids, pieces=pieces)


def distinct_first_tokens(labels: list[str], tokenize: Callable[[str], list[int]] | None) -> bool:
    """Whether every label begins with its own token (`tokenize(text) -> ids`); without a
    tokenizer, whether the labels' first characters differ."""
    fn: Tokenize | None = (lambda s: [(i, str(i)) for i in tokenize(s)]) if tokenize is not None else None
    return label_tokens(labels, fn, "tokenizer") is not None


@dataclass
class FirstToken:
    """What one generated first token says about the labels.

    `logps[j]`: log of the summed probability of label j's tokens among the top ones (None: none
    of them is); `answer`: the token the model put first; `off_label`: that token is no label's;
    `label_mass`: the probability on label tokens altogether (0-1).
    """

    logps: list[float | None]
    answer: str
    off_label: bool
    label_mass: float


def read_first_token(top: Sequence[tuple[str, int | None, float]], lt: LabelTokens) -> FirstToken:
    """Read `top` ((token, id or None, log-probability) of the first position's top tokens)."""
    mass = [0.0] * len(lt.labels)
    ordered = sorted(top, key=lambda t: -t[2])
    for token, tid, logprob in ordered:
        j = lt.label_of(token, tid)
        if j is not None:
            mass[j] += math.exp(logprob)
    answer = ordered[0][0] if ordered else ""
    off = not ordered or lt.label_of(ordered[0][0], ordered[0][1]) is None
    return FirstToken([math.log(m) if m > 0 else None for m in mass], answer, off, min(sum(mass), 1.0))


def rank_top_logprobs(top: list[tuple[str, float]], labels: list[str],
                      lt: LabelTokens | None = None) -> tuple[str | None, list[float | None]]:
    """(best label or None, a log-probability per label) from the first token's top alternatives,
    by `lt` (default: the approximate string-prefix rule). None when no label token is among them."""
    lt = lt or label_tokens(labels, None, "") or LabelTokens(tuple(labels), "approximate", exact=False)
    read = read_first_token([(t, None, lp) for t, lp in top], lt)
    if all(s is None for s in read.logps):
        return None, read.logps
    best = max(range(len(labels)), key=lambda j: read.logps[j] if read.logps[j] is not None else -math.inf)
    return labels[best], read.logps


def first_token_choice(method: str, logps: list[float | None], reference: list[float | None] | None,
                       reference_floor: float | None, methods: Sequence[str]) -> tuple[int, list[float], dict[str, int]]:
    """(index of the label `method` picks, its scores, index each other method in `methods` picks)
    from first-token log-probabilities, by advisor.ranking over a one-token "option" per label.

    Over one token the whole-label methods coincide: `sum`, `mean` and `first_token` rank by
    log P(first token); `calibrated` and `calibrated_prefix` by log P(first token | prompt) -
    log P(first token | content-free prompt) (Zhao et al. 2021). `reference[j]` None: the label's
    token was not among the content-free request's top tokens; `reference_floor` (the smallest
    top log-probability there) bounds it from above and stands in. A label whose token was not
    among the item's own top tokens cannot be picked (score -inf). Calibrated methods are left out
    of the alternatives when `reference` is None. Raises ValueError when every label is missing.
    """
    from advisor.ranking import NEEDS_REFERENCE, best_option

    if all(x is None for x in logps):
        raise ValueError("no label token among the top log-probabilities")
    lp = [[x if x is not None else -math.inf] for x in logps]
    ids = [[j] for j in range(len(logps))]
    floor = reference_floor if reference_floor is not None else -math.inf
    ref = [[x if x is not None else floor] for x in reference] if reference is not None else None
    best, scores = best_option(method, lp, ref, ids)
    picks = {m: best_option(m, lp, ref, ids)[0] for m in methods
             if m != method and (ref is not None or m not in NEEDS_REFERENCE)}
    return best, scores, picks


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


def enum_budget(labels: Sequence[str], count: Callable[[str], int] | None) -> int:
    """Tokens a JSON-enum answer may take: the longest quoted label (`count(text) -> tokens` by the
    model's tokenizer; without one, a token per character, which cannot undercount) plus
    ENUM_SLACK_TOKENS for a code fence, a newline and trailing whitespace that a grammar allows."""
    longest = max((count(json.dumps(lab)) if count else len(json.dumps(lab))) for lab in labels)
    return longest + ENUM_SLACK_TOKENS


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*(.*?)\s*(?:```\s*)?$", re.S)


def parse_enum_answer(text: str, finish_reason: str | None, labels: list[str]) -> str | None:
    """The label of a JSON-schema-enum answer, or None when it was cut short or is not a label.

    A code fence around the value is removed first (llama.cpp's grammar lets one open the answer).
    A grammar allows whitespace after the value, and a model can run on there until its budget ends
    (finish_reason "length", measured with llama.cpp's server): the value itself is whole then, so
    it counts; a value cut before its closing quote does not parse and is unmappable.
    """
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return map_to_label(body, labels) if finish_reason == "stop" and not fenced else None
    return value if isinstance(value, str) and value in labels else None
