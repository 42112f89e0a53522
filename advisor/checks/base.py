"""What one check says about one answer: pass or fail, and why it failed (a leaf: imports nothing of advisor)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    """One check on one answer. `reasons`: (reason kind, text) per failed condition, empty for a pass.

    The kind is a short key counted over a run (`CheckScores.failures`, e.g. "max_words",
    "schema:required"); the text says what failed in words ("112 words > max_words 90").
    """

    reasons: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def text(self) -> str:
        """Every reason in one line, "" for a pass."""
        return "; ".join(t for _, t in self.reasons)


PASS = Outcome()


def fail(*reasons: tuple[str, str]) -> Outcome:
    return Outcome(tuple(reasons))


def quote(text: str, limit: int = 60) -> str:
    """`text` as a short Python literal for a reason string."""
    s = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(s)
