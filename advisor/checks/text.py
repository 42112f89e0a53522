"""The text checks: `length` (words, characters, sentences), `phrases` (substrings and regexes) and
`language` (which language an answer is written in).

Units, as each reason states them:
- words: whitespace-separated tokens (`str.split()`, as `wc -w` counts), so "don't" is one word;
- characters: Unicode code points of the answer stripped of surrounding whitespace;
- sentences: a simple rule, no library: a sentence ends at '.', '!', '?' or '…' (any run of them,
  closing quotes or brackets allowed after) followed by whitespace or the end of the text; text after
  the last end counts as one more sentence; a piece with no letter or digit is not a sentence.
  It splits after abbreviations ("Dr. Smith" is two), which a length limit on model answers can bear;
  it needs no model and gives the same count everywhere.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from advisor.checks.base import PASS, Outcome, fail, quote
from advisor.textnorm import canonical_text

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


def words(text: str) -> int:
    return len(text.split())


def chars(text: str) -> int:
    return len(text.strip())


def sentences(text: str) -> int:
    return sum(1 for piece in _SENTENCE_END.split(text.strip()) if any(ch.isalnum() for ch in piece))


_MEASURES = {"words": words, "chars": chars, "sentences": sentences}


def check_length(check: Any, raw: str) -> Outcome:
    """One answer against a `LengthCheck`: one reason per bound broken, kind the bound's key
    ("112 words > max_words 90")."""
    reasons = []
    for unit, measure in _MEASURES.items():
        lo, hi = getattr(check, f"min_{unit}"), getattr(check, f"max_{unit}")
        if lo is None and hi is None:
            continue
        n = measure(raw)
        if lo is not None and n < lo:
            reasons.append((f"min_{unit}", f"{n} {unit} < min_{unit} {lo}"))
        if hi is not None and n > hi:
            reasons.append((f"max_{unit}", f"{n} {unit} > max_{unit} {hi}"))
    return fail(*reasons) if reasons else PASS


def check_phrases(check: Any, raw: str) -> Outcome:
    """One answer against a `PhrasesCheck`. Phrases are compared in `advisor.textnorm.canonical_text`
    form on both sides (case folded, Unicode forms, curly quotes and spacing unified), as substrings;
    patterns are Python regexes searched (`re.search`) in the answer as written."""
    text = canonical_text(raw)
    reasons = []
    for phrase in check.required:
        if canonical_text(phrase) not in text:
            reasons.append(("required", f"missing required phrase {quote(phrase)}"))
    for phrase in check.forbidden:
        if canonical_text(phrase) in text:
            reasons.append(("forbidden", f"forbidden phrase {quote(phrase)}"))
    for pattern in check.required_patterns:
        if not re.search(pattern, raw):
            reasons.append(("required_pattern", f"required pattern {quote(pattern)} not found"))
    for pattern in check.forbidden_patterns:
        m = re.search(pattern, raw)
        if m:
            reasons.append(("forbidden_pattern", f"forbidden pattern {quote(pattern)} matches {quote(m.group(0))}"))
    return fail(*reasons) if reasons else PASS


# Language identification: py3langid (BSD-3-Clause), the maintained fork of langid.py (Lui & Baldwin
# 2012, a naive Bayes classifier over byte n-grams, 97 languages, ISO 639-1 codes). Chosen over
# langdetect (a port of Google's language-detection): langdetect has had no release since 2021, ships
# no wheel, and draws random samples per call, so it needs a global seed to give the same answer twice;
# py3langid is deterministic by construction (no sampling), ships its model inside its wheel and is fast.
@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def known_languages() -> list[str]:
    """The ISO 639-1 codes the language check can tell apart."""
    return sorted(_identifier().labels)


def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the language `text` is most likely written in (py3langid)."""
    lang, p = _identifier().classify(text)
    return str(lang), float(p)


def check_language(check: Any, raw: str) -> Outcome:
    """One answer against a `LanguageCheck`: fails (kind "no_text") when there is not a letter to go
    on, else (kind "language") when the most likely language is not `check.language`."""
    if not any(ch.isalpha() for ch in raw):
        return fail(("no_text", f"no letters to identify a language in ({quote(raw.strip())})"))
    lang, p = identify(raw)
    if lang == check.language:
        return PASS
    return fail(("language", f"language '{lang}' (p={p:.2f}), not '{check.language}'"))
