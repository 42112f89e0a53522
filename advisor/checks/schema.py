"""The `json_schema` check: does an answer parse as JSON, and does the value satisfy a JSON Schema?

Validation is JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12) by the `jsonschema`
package's `Draft202012Validator`, with its format checker on (the formats it checks without extra
packages: email, ipv4, ipv6, date, regex, uuid, ...; others are annotations, as the draft allows).
Every error `iter_errors` finds is kept, each with its JSON path and keyword.

Two parses of an answer, both recorded per item as metrics beside the check:
- strict (`strict_json`): the whole answer, stripped of surrounding whitespace, is JSON (`json.loads`);
- lenient (`lenient_json`): the strict parse when it succeeds, else the first complete JSON object in
  the text with code fences and prose around it skipped (`advisor.jsontext.parse_json_object`, the
  parse the extraction scorer uses). Whatever parses strictly also parses leniently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from advisor.checks.base import PASS, Outcome, fail
from advisor.jsontext import parse_json_object  # the extraction scorer's own lenient parse

_NOTHING = object()  # no JSON value found (None is JSON null)
DRAFT = Draft202012Validator.META_SCHEMA["$id"]  # "https://json-schema.org/draft/2020-12/schema"


class SchemaFileError(ValueError):
    """A schema that cannot be used: not found, not JSON, or not a valid 2020-12 schema. One line."""


def load_schema(value: str | dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The schema a `json_schema` check names: `value` is a path relative to `base_dir` (task.yaml's
    folder) or the schema itself (a mapping). Checked against the 2020-12 meta-schema (`check_schema`).

    Raises SchemaFileError with one line that names the schema's file (and its line, for broken JSON).
    """
    where = "the inline schema"
    if isinstance(value, str):
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        where = str(path)
        if not path.is_file():
            raise SchemaFileError(f"schema file not found: {path}")
        from advisor.textio import read_text

        try:
            value = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise SchemaFileError(f"{path}:{e.lineno}: not JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(value, dict):
        raise SchemaFileError(f"{where}: a JSON Schema is an object, got {type(value).__name__}")
    declared = value.get("$schema")
    if declared is not None and str(declared).rstrip("#") != DRAFT:
        raise SchemaFileError(f"{where}: declares $schema {declared!r}; advise validates with JSON Schema "
                              f"2020-12: remove $schema or set it to {DRAFT}")
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as e:
        raise SchemaFileError(f"{where}: not a valid JSON Schema (2020-12): {e.json_path}: "
                              f"{_one_line(e.message)} ({e.validator})") from None
    return value


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A 2020-12 validator of `schema` (already checked by `load_schema`) with format checking on."""
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def strict_parse(raw: str) -> Any:
    """The whole answer, stripped of surrounding whitespace, as JSON; `_NOTHING` when it is not."""
    try:
        return json.loads(raw.strip())
    except json.JSONDecodeError:
        return _NOTHING


def lenient_parse(raw: str) -> Any:
    """The strict parse, else the first complete JSON object in the text (fences and prose skipped);
    `_NOTHING` when neither finds a value."""
    value = strict_parse(raw)
    if value is not _NOTHING:
        return value
    found = parse_json_object(raw)
    return _NOTHING if found is None else found


def parsed(raw: str) -> tuple[float, float]:
    """(strict_json, lenient_json) of one answer: 1.0 where that parse finds a JSON value."""
    return float(strict_parse(raw) is not _NOTHING), float(lenient_parse(raw) is not _NOTHING)


def check_answer(check: Any, v: Draft202012Validator, raw: str) -> Outcome:
    """One answer against a `JsonSchemaCheck` (`check.parse`: which parse the pass/fail uses).

    Fails with kind "not_json" when that parse finds nothing, else with one reason per schema error,
    kind "schema:<keyword>", text "schema: <JSON path>: <message> (<keyword>)", in path order."""
    value = strict_parse(raw) if check.parse == "strict" else lenient_parse(raw)
    if value is _NOTHING:
        if check.parse == "strict":
            try:
                json.loads(raw.strip())
            except json.JSONDecodeError as e:
                return fail(("not_json", f"not JSON (parse: strict): {e.msg} at line {e.lineno} column {e.colno}"))
        return fail(("not_json", "no JSON value found (parse: lenient: the whole answer, or an object in it)"))
    errors = sorted(v.iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)), str(e.validator),
                                                          e.message))
    if not errors:
        return PASS
    return fail(*((f"schema:{e.validator}", f"schema: {e.json_path}: {_one_line(e.message)} ({e.validator})")
                  for e in errors))


def _one_line(text: str, limit: int = 300) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
