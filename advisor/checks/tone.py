"""The `tone` check: VADER sentiment of an answer against a floor on its compound score and a ceiling
on its negative share.

VADER (Valence Aware Dictionary and sEntiment Reasoner; Hutto & Gilbert, "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM 2014), from the `vaderSentiment`
package (MIT), which ships its own lexicon (vader_lexicon.txt): no model, no download.
`compound` is the normalised sum of the valences, in [-1, 1] (VADER rounds it to 4 places); `neg` is
the share of the text's valence that is negative, in [0, 1] (3 places). An empty answer scores 0.0
for both.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from advisor.checks.base import PASS, Outcome, fail


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def polarity(text: str) -> dict[str, float]:
    """VADER's scores of `text`: {"neg", "neu", "pos", "compound"}."""
    return dict(_analyzer().polarity_scores(text))


def check_tone(check: Any, raw: str) -> Outcome:
    """One answer against a `ToneCheck`: kind "min_compound" ("VADER compound -0.42 < 0.3") and/or
    "max_negative" ("VADER neg 0.31 > max_negative 0.2")."""
    s = polarity(raw)
    reasons = []
    if check.min_compound is not None and s["compound"] < check.min_compound:
        reasons.append(("min_compound", f"VADER compound {s['compound']:g} < {check.min_compound:g}"))
    if check.max_negative is not None and s["neg"] > check.max_negative:
        reasons.append(("max_negative", f"VADER neg {s['neg']:g} > max_negative {check.max_negative:g}"))
    return fail(*reasons) if reasons else PASS
