"""Checks on every output, declared in task.yaml's `checks:`, that need no model and no gold answer.

    checks:
      - kind: json_schema          # the answer parses as JSON and satisfies a JSON Schema (2020-12)
        schema: schema.json        # a path relative to task.yaml, or the schema inline
        parse: lenient             # strict | lenient: which parse the pass/fail uses
      - kind: length               # words / characters / sentences, each bound optional
        max_words: 90
      - kind: phrases              # case-insensitive substrings and Python regexes
        forbidden: ["calm down"]
      - kind: tone                 # VADER sentiment (Hutto & Gilbert 2014)
        min_compound: 0.3
      - kind: language             # ISO 639-1, identified by py3langid
        language: en

Each check is a per-item metric named by its `name` (default: schema_valid, length, phrases, tone,
language): 1.0 where the answer passes, 0.0 where it fails, with a reason for each fail. A task with
a json_schema check (at most one) also gets `strict_json` and `lenient_json`; a task with any check
gets `pass_all` (every declared check passes). They are means of per-item scores like accuracy, so
intervals, paired tests and the verdict treat them like any other metric, for every task kind.

One module per kind of check: `schema` (json_schema), `text` (length, phrases, language), `tone`.
This module holds the task.yaml models (a union discriminated on `kind`), the registry and `run_checks`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from advisor.checks import schema as _schema
from advisor.checks import text as _text
from advisor.checks import tone as _tone
from advisor.checks.base import Outcome

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
PASS_ALL, STRICT_JSON, LENIENT_JSON = "pass_all", "strict_json", "lenient_json"
RESERVED = (PASS_ALL, STRICT_JSON, LENIENT_JSON)


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: str
    name: str

    # Figures a check adds besides its own pass/fail (json_schema: strict_json, lenient_json). The
    # one place that decides a check's metrics: `metrics()` for the record, `check_metrics` for the task.
    ADDED_METRICS: ClassVar[tuple[str, ...]] = ()

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        """Pass/fail and reasons of each answer in `raws` (shape (n,)), in order."""
        raise NotImplementedError

    def metrics(self) -> list[str]:
        """The per-item metrics this check adds: its name, then ADDED_METRICS."""
        return [self.name, *self.ADDED_METRICS]

    def rule(self) -> str:
        """What the check requires, in words, from its own settings ("max_words 90; forbidden: 'calm
        down'"); lists are shortened to their first four, an inline schema is "inline"."""
        parts = []
        for key, value in self.model_dump(by_alias=True, exclude={"kind", "name"}, exclude_none=True).items():
            if isinstance(value, list):
                if value:
                    more = f" and {len(value) - 4} more" if len(value) > 4 else ""
                    parts.append(f"{key}: " + ", ".join(f"'{v}'" for v in value[:4]) + more)
            elif isinstance(value, dict):
                parts.append(f"{key}: inline")
            else:
                parts.append(f"{key} {value}")
        return "; ".join(parts)


_NAME_DOC = "The per-item pass/fail metric this check adds (usable as target.metric); unique in the task."


class JsonSchemaCheck(_Check):
    """The answer is JSON and satisfies a JSON Schema (draft 2020-12, `jsonschema`)."""

    ADDED_METRICS: ClassVar[tuple[str, ...]] = (STRICT_JSON, LENIENT_JSON)
    kind: Literal["json_schema"]
    name: str = Field("schema_valid", pattern=NAME_PATTERN, description=_NAME_DOC)
    schema_: str | dict[str, Any] = Field(
        alias="schema", description="A JSON Schema (2020-12): a path relative to task.yaml, or the schema inline.")
    parse: Literal["strict", "lenient"] = Field(
        "lenient", description="Which parse the pass/fail uses: strict (the whole answer is JSON) or lenient "
        "(also the first JSON object inside prose or a code fence).")
    _loaded: dict[str, Any] | None = PrivateAttr(None)

    def resolve(self, base_dir: Path) -> None:
        """Read and check the schema (`schema.load_schema`); raises schema.SchemaFileError (one line)."""
        self._loaded = _schema.load_schema(self.schema_, base_dir)

    @property
    def schema_dict(self) -> dict[str, Any]:
        """The checked schema (a path resolved against the working folder when never resolved)."""
        if self._loaded is None:
            self.resolve(Path("."))
        assert self._loaded is not None
        return self._loaded

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        v = _schema.validator(self.schema_dict)
        return [_schema.check_answer(self, v, raw) for raw in raws]


def _bounds_in_order(model: Any, units: Sequence[str]) -> None:
    for unit in units:
        lo, hi = getattr(model, f"min_{unit}"), getattr(model, f"max_{unit}")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_{unit} {lo} is above max_{unit} {hi}: no answer could pass")


class LengthCheck(_Check):
    """Bounds on the answer's words (whitespace-separated), characters (stripped) and sentences
    (a simple end-of-sentence rule: see advisor.checks.text)."""

    UNITS: ClassVar[tuple[str, ...]] = ("words", "chars", "sentences")
    kind: Literal["length"]
    name: str = Field("length", pattern=NAME_PATTERN, description=_NAME_DOC)
    min_words: int | None = Field(None, ge=0, description="Fewest words (whitespace-separated tokens).")
    max_words: int | None = Field(None, ge=0, description="Most words.")
    min_chars: int | None = Field(None, ge=0, description="Fewest characters (surrounding whitespace stripped).")
    max_chars: int | None = Field(None, ge=0, description="Most characters.")
    min_sentences: int | None = Field(None, ge=0, description="Fewest sentences.")
    max_sentences: int | None = Field(None, ge=0, description="Most sentences.")

    @model_validator(mode="after")
    def _some_bound(self) -> LengthCheck:
        if all(getattr(self, f"{m}_{u}") is None for m in ("min", "max") for u in self.UNITS):
            raise ValueError("a length check needs at least one bound: min_words, max_words, min_chars, "
                             "max_chars, min_sentences or max_sentences")
        _bounds_in_order(self, self.UNITS)
        return self

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        return [_text.check_length(self, raw) for raw in raws]


class PhrasesCheck(_Check):
    """Phrases the answer must or must not contain (case-insensitive substrings), and Python regexes it
    must or must not match (`re.search`; flags such as (?i) in the pattern)."""

    kind: Literal["phrases"]
    name: str = Field("phrases", pattern=NAME_PATTERN, description=_NAME_DOC)
    required: list[str] = Field(default_factory=list, description="Phrases every answer must contain.")
    forbidden: list[str] = Field(default_factory=list, description="Phrases no answer may contain.")
    required_patterns: list[str] = Field(default_factory=list, description="Regexes every answer must match.")
    forbidden_patterns: list[str] = Field(default_factory=list, description="Regexes no answer may match.")

    @field_validator("required", "forbidden")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        for i, phrase in enumerate(v):
            if not phrase.strip():
                raise ValueError(f"item {i} is blank: a blank phrase is in every answer")
        return v

    @field_validator("required_patterns", "forbidden_patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for i, pattern in enumerate(v):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"item {i} {pattern!r} is not a Python regex: {e}") from None
        return v

    @model_validator(mode="after")
    def _something(self) -> PhrasesCheck:
        if not (self.required or self.forbidden or self.required_patterns or self.forbidden_patterns):
            raise ValueError("a phrases check needs at least one non-empty list: required, forbidden, "
                             "required_patterns or forbidden_patterns")
        return self

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        return [_text.check_phrases(self, raw) for raw in raws]


class ToneCheck(_Check):
    """VADER sentiment (Hutto & Gilbert 2014): a floor on the compound score, a ceiling on `neg`."""

    kind: Literal["tone"]
    name: str = Field("tone", pattern=NAME_PATTERN, description=_NAME_DOC)
    min_compound: float | None = Field(None, ge=-1.0, le=1.0, description="Lowest VADER compound score, in [-1, 1].")
    max_negative: float | None = Field(None, ge=0.0, le=1.0,
                                       description="Highest VADER `neg` (negative share of the text), in [0, 1].")

    @model_validator(mode="after")
    def _some_bound(self) -> ToneCheck:
        if self.min_compound is None and self.max_negative is None:
            raise ValueError("a tone check needs min_compound, max_negative or both")
        return self

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        return [_tone.check_tone(self, raw) for raw in raws]


class LanguageCheck(_Check):
    """The answer is written in one language (ISO 639-1), as py3langid identifies it."""

    kind: Literal["language"]
    name: str = Field("language", pattern=NAME_PATTERN, description=_NAME_DOC)
    language: str = Field(pattern=r"^[a-z]{2,3}$",
                          description="ISO 639-1 code, e.g. en, de, fr (ISO 639-3 for the few without one).")

    @field_validator("language")
    @classmethod
    def _known(cls, v: str) -> str:
        known = _text.known_languages()
        if v not in known:
            raise ValueError(f"'{v}' is not a language the identifier knows; one of {', '.join(known)}")
        return v

    def outcomes(self, raws: Sequence[str]) -> list[Outcome]:
        return [_text.check_language(self, raw) for raw in raws]


CheckSpec = Annotated[JsonSchemaCheck | LengthCheck | PhrasesCheck | ToneCheck | LanguageCheck,
                      Field(discriminator="kind")]

# kind -> its task.yaml model (and so its default name and its code).
REGISTRY: dict[str, type[_Check]] = {
    "json_schema": JsonSchemaCheck, "length": LengthCheck, "phrases": PhrasesCheck, "tone": ToneCheck,
    "language": LanguageCheck,
}


def check_metrics(checks: Sequence[Any]) -> list[str]:
    """The per-item metrics `checks` add, in order: each check's name, then what checks add besides
    (`_Check.metrics`: strict_json and lenient_json with a json_schema check), pass_all; [] without checks."""
    if not checks:
        return []
    added = [m for c in checks for m in c.metrics()[1:]]
    return [*(c.name for c in checks), *added, PASS_ALL]


def name_problem(checks: Sequence[Any], builtin: Sequence[str],
                 taken: Sequence[str] = ()) -> tuple[int, str, str] | None:
    """(index, key at fault, message) of the first check whose name repeats another's, or is one of
    `builtin` (the task kind's gold metrics), of `taken` (other figures a run reports beside them) or of
    strict_json / lenient_json / pass_all; or of a second json_schema check. None when all is well."""
    seen: dict[str, int] = {}
    schema_at = None
    for i, c in enumerate(checks):
        if isinstance(c, JsonSchemaCheck):
            if schema_at is not None:
                return i, "kind", f"a second json_schema check (the first is checks[{schema_at}]); a task has at most one"
            schema_at = i
        if c.name in seen:
            return i, "name", (f"check name '{c.name}' is already the name of checks[{seen[c.name]}]; give each check "
                       "its own `name:`")
        if c.name in builtin:
            return i, "name", (f"check name '{c.name}' is a built-in metric of this task kind "
                       f"({', '.join(builtin)}); give the check another `name:`")
        if c.name in taken:
            return i, "name", (f"check name '{c.name}' is a figure the scorer or a lever already reports; give "
                               "the check another `name:`")
        if c.name in RESERVED:
            return i, "name", f"check name '{c.name}' is reserved ({', '.join(RESERVED)}); give the check another `name:`"
        seen[c.name] = i
    return None


@dataclass
class CheckScores:
    """What `run_checks` found on n answers.

    `per_item`: metric -> n floats, 1.0 pass / 0.0 fail (each check's name, strict_json and
    lenient_json with a json_schema check, pass_all). `reasons`: each check's name and pass_all -> n
    strings, "" for a pass, else every failed condition ("112 words > max_words 90"; for pass_all,
    the names of the checks that failed). `failures`: the same names -> reason kind -> items failing
    with it (pass_all: check name -> items failing it).
    """

    per_item: dict[str, list[float]] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Scores.details["checks"]: name -> {"rate": share of items passing, "failures": {kind: items}}."""
        return {name: {"rate": sum(v) / len(v) if v else 0.0, "failures": dict(self.failures.get(name, {}))}
                for name, v in self.per_item.items() if name in self.reasons}


def run_checks(checks: Sequence[Any], raws: Sequence[str]) -> CheckScores:
    """Run every check on every raw answer (`raws`: shape (n,), the model's text as produced).

    Returns per-item 0/1 scores, reasons and failure counts (`CheckScores`); empty without checks.
    Raises schema.SchemaFileError when a json_schema check's schema cannot be read or is invalid
    (a task loaded by advisor.spec has checked it already)."""
    out = CheckScores()
    if not checks:
        return out
    raws = ["" if r is None else str(r) for r in raws]
    n = len(raws)
    failed_by: list[list[str]] = [[] for _ in range(n)]
    for check in checks:
        results = check.outcomes(raws)
        out.per_item[check.name] = [1.0 if o.passed else 0.0 for o in results]
        out.reasons[check.name] = [o.text for o in results]
        counts: Counter[str] = Counter()
        for i, o in enumerate(results):
            counts.update({kind for kind, _ in o.reasons})  # an item counts once per kind
            if not o.passed:
                failed_by[i].append(check.name)
        out.failures[check.name] = dict(sorted(counts.items()))
        if isinstance(check, JsonSchemaCheck):
            both = [_schema.parsed(r) for r in raws]
            out.per_item[STRICT_JSON] = [s for s, _ in both]
            out.per_item[LENIENT_JSON] = [lenient for _, lenient in both]
    out.per_item[PASS_ALL] = [0.0 if f else 1.0 for f in failed_by]
    out.reasons[PASS_ALL] = [f"failed: {', '.join(f)}" if f else "" for f in failed_by]
    out.failures[PASS_ALL] = dict(sorted(Counter(name for f in failed_by for name in f).items()))
    return out


__all__ = [
    "CheckScores", "CheckSpec", "JsonSchemaCheck", "LanguageCheck", "LengthCheck", "LENIENT_JSON", "Outcome",
    "PASS_ALL", "PhrasesCheck", "REGISTRY", "RESERVED", "STRICT_JSON", "ToneCheck", "check_metrics",
    "name_problem", "run_checks",
]
