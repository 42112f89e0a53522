"""Finds levers through the `advisor.levers` entry-point group, as a third-party lever would be found."""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from advisor.errors import InputError
from advisor.types import FAMILIES, Lever

GROUP = "advisor.levers"


def available() -> dict[str, object]:
    """Entry points by lever name (not loaded yet: loading imports heavy modules)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_lever(name: str) -> Lever:
    eps = available()
    if name not in eps:
        close = difflib.get_close_matches(name, eps, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InputError(
            f"unknown lever '{name}'.{hint} Available: {', '.join(sorted(eps)) or 'none (is advise installed?)'}",
            field="levers",
        )
    factory = eps[name].load()  # type: ignore[attr-defined]
    lever = factory()
    if not isinstance(lever, Lever):
        raise InputError(f"lever '{name}' is not an advisor.types.Lever (subclass it)", field="levers")
    if lever.family not in FAMILIES:  # a declaration, checked once here so every reader can trust it
        raise InputError(f"lever '{name}' declares family {lever.family!r}; one of {', '.join(FAMILIES)}",
                         field="levers")
    return lever


def load_levers(names: list[str]) -> list[Lever]:
    """Load the named levers, ordered by their rung on the cost ladder (cheapest first)."""
    levers = [load_lever(n) for n in dict.fromkeys(names)]
    return sorted(levers, key=lambda lv: lv.rung)


def lever_options(lever: Lever, raw: dict[str, Any]) -> BaseModel:
    """Validate a lever's `lever_options` entry with its own model; errors name the option."""
    try:
        return lever.options_model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(msg, field=f"lever_options.{lever.name}.{loc}") from None


def fine_tunes(lever: Lever) -> bool:
    """Whether a lever trains weights (it needs a local `hf:` model): its declared family."""
    return lever.family == "fine-tuning"
