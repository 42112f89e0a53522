"""One notion of "the same text", and answer normalisation that never changes meaning.

Two functions decide every text comparison in `advise`:

- `canonical_text(text) -> str` is the key under which two texts are the same text: the leakage
  guard (`advisor.data.remove_leakage`, `assert_no_eval`, so the few-shot, prompt-search, retrieval
  and fine-tuning pools), the audit's exact duplicates, its MinHash shingles and knowledge duplicates,
  extraction field values and the API label mapping all compare it. It only removes differences in
  how a text is *written*, never in what it says.
- `normalize_answer(text) -> str` (tokens: `answer_tokens`) is the form qa/generation answers are
  compared in by exact match, token F1 and `contains`. It starts from `canonical_text` and then drops
  what SQuAD drops where that is harmless (articles, punctuation around words), but keeps every mark
  that carries meaning inside or next to numbers and codes.

Hashes that identify stored content (`advisor.data.stable_hash` of examples, cache keys) never go
through either function: they hash the text as read.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["answer_tokens", "canonical_text", "normalize_answer"]

# Quote and dash variants NFKC leaves alone (it maps full-width and small forms, not these).
_QUOTES_DASHES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",  # ‘ ’ ‚ ‛
    "\u2039": "'", "\u203a": "'",  # ‹ ›
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',  # “ ” „ ‟
    "\u00ab": '"', "\u00bb": '"',  # « »
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",  # ‐ ‑ ‒ –
    "\u2014": "-", "\u2015": "-", "\u2212": "-",  # — ― − (minus sign)
    "\u2e3a": "-", "\u2e3b": "-",  # ⸺ ⸻
})


def _drop_format(text: str) -> str:
    """`text` without format characters (Unicode category Cf: zero-width space and joiners, soft
    hyphen, byte-order mark, direction marks, word joiner, ...)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def canonical_text(text: str) -> str:
    """The form under which two texts are "the same text": str -> str, idempotent.

    In order: format characters (category Cf) removed; Unicode NFKC normalisation (UAX #15,
    https://unicode.org/reports/tr15/); the quote and dash variants NFKC keeps mapped to ASCII
    (‘ ’ ‚ ‛ ‹ › to ', “ ” „ ‟ « » to ", ‐ ‑ ‒ – — ― − ⸺ ⸻ to -); case folded with `str.casefold`
    (Unicode full case folding, https://docs.python.org/3/library/stdtypes.html#str.casefold),
    then NFKC again (case folding can un-normalise, as in the Unicode Standard's compatibility
    caseless match, §3.13 D146); every run of Unicode whitespace one space; ends stripped.

    So these are the same: "Café" written NFC or NFD; full-width "ＡＢＣ１２３" and "abc123";
    a non-breaking, thin or ideographic space and a space; a zero-width space, soft hyphen or
    byte-order mark and nothing; curly and straight quotes; an en dash, em dash or minus sign and
    "-"; "Straße" and "STRASSE" (full case folding); "ﬁ" and "fi", "…" and "..." (NFKC).

    Never folded: letters to other letters (accents stay: "café" != "cafe"), digits to other
    digits, any punctuation dropped or added ("3.14" != "314", "-5" != "5", "C++" != "C"),
    word order or words. NFKC's one fold that can read as a change of meaning is that super- and
    subscripts become plain characters ("H₂O" == "H2O", but also "x²" == "x2"); for leakage that is
    the safe side (a copy written differently is still caught); `normalize_answer` keeps a
    superscript exponent after a digit apart ("10²" becomes "10^2", not "102").
    """
    text = str(text)
    if text.isascii():  # NFKC and Cf removal change nothing in ASCII; casefold is lower
        return " ".join(text.lower().split())
    text = unicodedata.normalize("NFKC", _drop_format(text))
    text = text.translate(_QUOTES_DASHES).casefold()
    return " ".join(unicodedata.normalize("NFKC", text).split())


# -- answers ------------------------------------------------------------------------------------

_ARTICLES = frozenset({"a", "an", "the"})
# Punctuation that is kept at a token's edge whenever the token holds a letter or digit:
# "50%", "C#", "#1", "@user". (Signs, currency and math symbols are symbols, never stripped.)
_KEEP_AT_EDGE = frozenset("%‰‱#@")
_OPEN_CLOSE = {"(": ")", "[": "]", "{": "}"}
_CLOSE_OPEN = {v: k for k, v in _OPEN_CLOSE.items()}
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻"
_EXPONENT = re.compile(rf"(?<=\d)[{_SUPERSCRIPTS}]+")
_PLAIN_SUPERSCRIPTS = str.maketrans(_SUPERSCRIPTS, "0123456789+-")
# A number with thousands commas between groups of three digits, with any sign, currency or unit
# around it: "1,000", "-1,234,567.5", "$1,000", "1,000%".
_THOUSANDS = re.compile(r"[^\d,]*\d{1,3}(?:,\d{3})+(?:\.\d+)?[^\d,]*")
# Initials with dots: "u.s.", "u.s.a.", "e.g." (single letters, each followed by a dot).
_INITIALS = re.compile(r"(?:[^\W\d_]\.){2,}|(?:[^\W\d_]\.)+[^\W\d_]")
_INNER_APOSTROPHE = re.compile(r"(?<=[^\W\d_])'(?=[^\W\d_])")


def _strippable(ch: str) -> bool:
    """Punctuation (category P*) or a modifier symbol (Sk, such as ^ and `): what may come off a
    token's edges. Math symbols (+ < = > ~ ±), currency symbols and other symbols (°) never do."""
    cat = unicodedata.category(ch)
    return (cat[0] == "P" or cat == "Sk") and ch not in _KEEP_AT_EDGE


def _trim(tok: str) -> str:
    """`tok` without the punctuation around it that carries no meaning."""
    while True:
        before = tok
        # Brackets around the whole token: "(5)" -> "5", "[1]" -> "1".
        while len(tok) >= 2 and _OPEN_CLOSE.get(tok[0]) == tok[-1]:
            tok = tok[1:-1]
        tok = _strip_edges(tok)
        if tok == before:
            break
    if not any(c.isalnum() for c in tok) and all(_strippable(c) or c in _KEEP_AT_EDGE for c in tok):
        return ""  # only punctuation ("...", "-", "%")
    return tok


def _strip_edges(tok: str) -> str:
    start, end = 0, len(tok)
    while start < end:
        ch = tok[start]
        nxt = tok[start + 1] if start + 1 < end else ""
        if not _strippable(ch):
            break
        if ch in "-." and (nxt.isdigit() or (ch == "-" and nxt == "." and start + 2 < end
                                             and tok[start + 2].isdigit())):
            break  # a sign or decimal point: "-5", ".5", "-.5"
        if ch in _OPEN_CLOSE and _OPEN_CLOSE[ch] in tok[start + 1:end]:
            break  # "(a)b": the bracket has its partner
        start += 1
    while end > start:
        ch = tok[end - 1]
        if not _strippable(ch):
            break
        if ch in _CLOSE_OPEN and _CLOSE_OPEN[ch] in tok[start:end - 1]:
            break  # "f(x)": the bracket has its partner
        end -= 1
    return tok[start:end]


@lru_cache(maxsize=65536)
def _token(raw: str) -> str:
    tok = _trim(raw)
    if not tok:
        return ""
    if _INITIALS.fullmatch(tok):
        return tok.replace(".", "")  # "u.s." -> "us"
    if _THOUSANDS.fullmatch(tok):
        tok = tok.replace(",", "")  # "1,000" -> "1000" (but "1,5" and "1.000" stay as written)
    return _INNER_APOSTROPHE.sub("", tok)  # "don't" -> "dont", "o'brien" -> "obrien"


def answer_tokens(text: str) -> list[str]:
    """The tokens of an answer as exact match, token F1 and `contains` compare them.

    `canonical_text` first (case, Unicode forms, quotes, dashes, spaces); a superscript exponent
    after a digit becomes "^" and the digits ("10²" -> "10^2"). Then each whitespace-separated
    token loses the punctuation at its edges that carries no meaning — sentence punctuation,
    quotes, brackets around it (not a bracket whose partner is inside: "f(x)") — and articles
    (a, an, the) are dropped. Kept, so these never equal their bare forms:

    - a sign or decimal point before a digit: "-5", "+44", ".5";
    - everything inside a token: "3.14", "2024-01-05", "A/B", "e-mail", "10:30", "1.000";
    - symbols at the edges: currency ("$5", "5€"), math ("C++", "18+", "<5"), "°";
    - "%", "‰", "#", "@" attached to a letter or digit: "50%", "C#", "#1", "@user".

    Folded beyond `canonical_text`: a thousands comma between digit groups ("1,000" == "1000",
    "$1,234.5" == "$1234.5"; "1,5" and "1.000" are read as written, equal to neither); dots in
    initials ("U.S." == "US", "e.g." == "eg", "U.S.A." == "USA" but "US" != "USA"); an apostrophe
    between letters ("don't" == "dont", "France's" == "frances", as SQuAD).

    Why our own code: this is SQuAD v1.1's `normalize_answer` (evaluate-v1.1.py, Rajpurkar et al.
    2016: lower case, drop `string.punctuation` everywhere, drop articles, fold spaces) with its
    one harmful step replaced: dropping every punctuation mark makes "-5" equal "5", "3.14" equal
    "314" and "C++" equal "C". No maintained library offers a meaning-preserving variant (the
    official scripts, `evaluate`'s squad metric and others all copy the SQuAD normaliser).
    """
    text = _EXPONENT.sub(lambda m: "^" + m.group().translate(_PLAIN_SUPERSCRIPTS), str(text))
    out = []
    for raw in canonical_text(text).split():
        tok = _token(raw)
        if tok and tok not in _ARTICLES:
            out.append(tok)
    return out


def normalize_answer(text: str) -> str:
    """An answer's comparable form: its `answer_tokens` joined by single spaces."""
    return " ".join(answer_tokens(text))
