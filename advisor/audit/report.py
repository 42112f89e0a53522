"""What an audit hands back: findings (check, severity, count, message, examples) and counts.

The shape is the `audit` key of results.json:
`{"findings": [{"check", "severity", "count", "message", "examples": [{"a", "b", "text"}]}],
"counts": {...}, "strict": bool}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from advisor.errors import InputError

# error: a record the loaders refuse (`advise validate` and `advise run` stop at it).
Severity = Literal["error", "removed", "warning", "info"]


@dataclass
class Finding:
    """One check's result. `examples` are `{"a": "file:line", "b": "file:line" | None, "text": str}`."""

    check: str
    severity: Severity
    count: int
    message: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "count": self.count, "message": self.message,
                "examples": self.examples}


@dataclass
class AuditReport:
    """All findings of one audit, plus the train ids the leakage policy acts on."""

    findings: list[Finding]
    counts: dict[str, Any]
    strict: bool
    exact_leak_ids: list[str] = field(default_factory=list)  # train ids whose input is in eval
    near_leak_ids: list[str] = field(default_factory=list)  # train ids nearly copying an eval input
    refused: list[InputError] = field(default_factory=list)  # the loaders' errors, one per refused record
    # Likely wrong gold answers (advisor.audit.label_errors.Suspect), eval first, each split most likely
    # first: every one, where the findings show the top few; `advise audit --review` writes them.
    suspects: list[Any] = field(default_factory=list)

    def refusal(self) -> InputError | None:
        """The error `advise validate` would stop at, saying how many more the audit lists; None when the
        loaders accept every record."""
        if not self.refused:
            return None
        first = self.refused[0]
        more = (f" (and {len(self.refused) - 1} more record(s) that validate and run refuse; the audit lists "
                "them all)") if len(self.refused) > 1 else ""
        return InputError(first.message + more, file=first.file, line=first.line, field=first.field)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def failed(self, strict: bool | None = None) -> bool:
        """True when strict (the argument, else the task's `audit.strict`) and any warning was found."""
        return bool(self.strict if strict is None else strict) and bool(self.warnings)

    def find(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def as_dict(self) -> dict[str, Any]:
        return {"findings": [f.as_dict() for f in self.findings], "counts": self.counts, "strict": self.strict}
