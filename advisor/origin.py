"""Where a task's settings were written, so that an error names it: task.yaml and the line of the
key, or the `--set` argument that overrode it.

    origin = Origin(Path("task.yaml"), text, tuple(parse_sets(["target.threshold=0.9"])))
    origin.locate("data", "eval")       # {"file": Path("task.yaml"), "line": 7}
    origin.locate("target", "threshold")  # {"file": "--set target.threshold=0.9", "line": None}

Also the one-line message for a pydantic validation failure (`validation_error`), which names that
place and says in plain words what YAML made of a value (`labels: [0, 1]` are numbers).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from advisor.errors import InputError


class SettingError(ValueError):
    """A check across several settings that is about one key: `loc` (relative to the model that
    raises it) is where the error is reported, so its task.yaml line is named."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class Override:
    """One setting given outside task.yaml, e.g. `--set target.threshold=0.9`."""

    key: str  # dotted, e.g. "target.threshold"
    value: Any
    written: str  # as the user wrote it; an error about this key names it instead of task.yaml

    @property
    def loc(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def parse_sets(items: Iterable[str]) -> list[Override]:
    """`--set KEY=VALUE` arguments; each value is parsed as YAML (so numbers stay numbers).

    >>> parse_sets(["target.threshold=0.9"])[0].value
    0.9
    """
    out = []
    for item in items:
        written = f"--set {item}"
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InputError("expected KEY=VALUE, e.g. --set target.threshold=0.9", file=written)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:  # not YAML (e.g. a Jinja2 template's braces): the text as given
            value = text
        out.append(Override(key, value, written))
    return out


@dataclass(frozen=True)
class Origin:
    """Where a task's settings were written: task.yaml (its text, for line numbers) and the
    overrides that replace some of its keys."""

    file: Path
    text: str
    overrides: tuple[Override, ...] = ()
    _lines: dict[tuple[Any, ...], int | None] = field(default_factory=dict, compare=False, repr=False)

    def locate(self, *loc: str | int) -> dict[str, Any]:
        """`file` and `line` for an InputError about the setting at `loc`: the override that set it
        (or a key above or below it), else task.yaml and the line of that key.

        >>> origin.locate("data", "eval")  # doctest: +SKIP
        {'file': 'task.yaml', 'line': 7}
        """
        for o in self.overrides:
            n = min(len(o.loc), len(loc))
            if loc and tuple(map(str, loc[:n])) == o.loc[:n]:
                return {"file": o.written, "line": None}
        if loc not in self._lines:
            self._lines[loc] = _yaml_line(self.text, loc)
        return {"file": self.file, "line": self._lines[loc]}

    def locate_field(self, dotted: str) -> dict[str, Any]:
        """`locate` for an error's dotted field, e.g. "lever_options.rag.k" or "levers.0"."""
        return self.locate(*(int(p) if p.isdigit() else p for p in dotted.split(".")))


def _yaml_find(text: str, loc: tuple[Any, ...]) -> tuple[int | None, Any]:
    """The line of `loc`'s key in the YAML source and its value node (None when the file does not
    hold it; the line is then that of the deepest key above it that it holds, or None)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None, None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if found is None:
                return line, None
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line, None
    return line, node


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    return _yaml_find(text, loc)[0]


Overrides = Mapping[str, Any] | Sequence[Override]


def as_overrides(overrides: Overrides | None) -> tuple[Override, ...]:
    if overrides is None:
        return ()
    if isinstance(overrides, Mapping):  # a library caller's {"target.threshold": 0.9}
        return tuple(Override(k, v, f"override {k}={v!r}") for k, v in overrides.items())
    return tuple(overrides)


def apply_override(raw: dict[str, Any], o: Override) -> None:
    node: Any = raw
    *parents, leaf = o.loc
    for i, p in enumerate(parents):
        if node.get(p) is None:
            node[p] = {}
        node = node[p]
        if not isinstance(node, dict):
            raise InputError(f"'{'.'.join(o.loc[: i + 1])}' is a single value, not a mapping of settings",
                             file=o.written, field=o.key)
    node[leaf] = o.value


def _keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys `root` allows in the mapping that holds `loc`'s last key."""
    model: Any = root
    for key in loc[:-1]:
        info = model.model_fields.get(key) if isinstance(key, str) else None
        ann = info.annotation if info else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return [k for k, f in model.model_fields.items() if not f.exclude]


def _clean_loc(loc: tuple[Any, ...], raw: Any, kind: str) -> tuple[Any, ...]:
    """`loc` without pydantic's own steps (validator names, union members such as 'str' or
    'ModelEntry'): every step is a key or index of the raw settings, except a missing key's."""
    out: list[Any] = []
    node = raw
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        elif not (last and kind == "missing"):
            continue
        out.append(step)
    return tuple(out)


def _value_at(raw: Any, loc: tuple[Any, ...]) -> Any:
    for step in loc:
        raw = raw[step]
    return raw


def _not_text(origin: Origin, raw: dict[str, Any], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str]:
    """A YAML number or boolean where text belongs (`labels: [0, 1]`): say what YAML read and show
    the quoted form. Returns the key to name (the list, for an item of one) and the message."""
    item = bool(loc) and isinstance(loc[-1], int)
    if item:  # an item of a list: name the list, quote every item
        loc = loc[:-1]
    values = _value_at(raw, loc)
    node = None if origin.locate(*loc)["line"] is None else _yaml_find(origin.text, loc)[1]
    if item:
        nodes = node.value if isinstance(node, yaml.SequenceNode) and len(node.value) == len(values) else None
        texts = [n.value if nodes and isinstance(n := nodes[i], yaml.ScalarNode) else str(v)
                 for i, v in enumerate(values)]
        bare = [(t, v) for t, v in zip(texts, values) if isinstance(v, (int, float, bool))]
        quoted = ", ".join(f'"{t}"' for t in texts)
    else:
        text = node.value if isinstance(node, yaml.ScalarNode) else str(values)
        bare, quoted = [(text, values)], f'"{text}"'
    kinds = list(dict.fromkeys("booleans" if isinstance(v, bool) else "numbers" for _, v in bare))
    what = " and ".join(kinds) if len(bare) > 1 else "a boolean" if isinstance(bare[0][1], bool) else "a number"
    form = f"[{quoted}]" if item else quoted
    return loc, (f"must be text, but YAML reads {', '.join(t for t, _ in bare)} as {what}; quote "
                 f"{'them' if len(bare) > 1 else 'it'}: {loc[-1]}: {form}")


def validation_error(e: ValidationError, origin: Origin, raw: dict[str, Any], model: type[BaseModel]) -> InputError:
    """One line for a failure to validate `raw` (read from `origin`) as `model`, naming where the key at
    fault was written. A misspelled key comes first and is named: the "field required" it causes for
    the key it was meant to be is its echo, not news."""
    errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
    locs = []
    for err in errors:
        loc = tuple(x for x in err["loc"] if not str(x).startswith("function-after["))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SettingError):  # a check across keys, about the one it names
            loc += cause.loc
        locs.append(_clean_loc(loc, raw, err["type"]))
    err, loc = errors[0], locs[0]
    # Errors at the same key are one problem: a union's alternatives, or every item of a list.
    same = [x for x, lc in zip(errors, locs) if lc == loc]
    if loc and isinstance(loc[-1], int):
        same += [x for x, lc in zip(errors, locs) if lc[:-1] == loc[:-1] and lc != loc and x["type"] == err["type"]]
    others = [x for x in errors if not any(x is y for y in same)]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _keys_at(model, loc), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        msg = f"unknown key '{key}'.{hint} (check the spelling; `advise schema` lists the keys)"
        others = [o for o in others if not (o["type"] == "missing" and tuple(o["loc"][:-1]) == loc[:-1])]
    elif all(x["type"] == "string_type" and isinstance(x["input"], (int, float, bool)) for x in same):
        loc, msg = _not_text(origin, raw, loc)
    elif len({x["type"] for x in same}) > 1:  # a union: say every form it accepts
        forms = list(dict.fromkeys(x["msg"].removeprefix("Input should be ") for x in same))
        msg = f"Input should be {' or '.join(forms)}"
    field = ".".join(str(x) for x in loc) or None
    more = f" (and {len(others)} more)" if others else ""
    return InputError(msg + more, **origin.locate(*loc), field=field)
