"""How a figure is written, the same in the terminal scorecard and in report.html/md.

    num(0.8123) == "0.812"; usd(0.00123) == "0.0012"; usd(None) == "–"
    interval({"value": 0.83, "ci_low": 0.787, "ci_high": 0.87}) == "0.830 (0.787–0.870)"

A value a run did not record (None, or a results.json from before it was kept) is written "–",
never 0: an unknown price stays unknown. Plain text only: each renderer escapes what it prints.
"""

from __future__ import annotations

import json
from typing import Any

CELL_CHARS = 300  # longer inputs and outputs are cut in the failures table (the store has them whole)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def num(x: Any, digits: int = 3) -> str:
    """A number to `digits` decimals; '–' for anything that is not one."""
    return f"{x:.{digits}f}" if _is_number(x) else "–"


def signed(x: Any, digits: int = 3) -> str:
    """A difference with its sign always shown (+0.020, -0.013); '–' for anything that is not a number."""
    return f"{x:+.{digits}f}" if _is_number(x) else "–"


def usd(x: Any) -> str:
    """Dollars: cents above $1, four decimals below; '–' for a price the run did not know."""
    if not _is_number(x):
        return "–"
    return f"{x:,.2f}" if x >= 1 or x == 0 else f"{x:.4f}"


def pct(confidence: Any) -> str:
    """A confidence level as a whole percentage (0.95 -> '95%'); 95% when the run did not record one."""
    return f"{round(100 * confidence)}%" if _is_number(confidence) else "95%"


def interval(m: dict[str, Any] | None) -> str:
    """A metric with its interval, 'value (low–high)', or the value alone when the interval has no width."""
    if not m:
        return "–"
    if m.get("ci_low") == m.get("ci_high") == m.get("value"):
        return num(m.get("value"))
    return f"{num(m.get('value'))} ({num(m.get('ci_low'))}–{num(m.get('ci_high'))})"


def latency_ms(cost: dict[str, Any]) -> str:
    """'p50 / p95' in whole milliseconds, '–' when no latency was measured."""
    if cost.get("latency_ms_p50") is None:
        return "–"
    return f"{num(cost.get('latency_ms_p50'), 0)} / {num(cost.get('latency_ms_p95'), 0)}"


def cut(text: str, limit: int = CELL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_value(v: Any) -> str:
    """A gold or parsed output as one line of text: strings as they are, the rest as compact JSON."""
    if v is None:
        return "(none)"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)


def price_basis_note(levers: list[dict[str, Any]]) -> str:
    """One sentence for a report's cost table: what each row's per-query price assumes (results.json
    `price_basis`, grouped by basis); empty for rows recorded before it was."""
    groups: dict[str, list[str]] = {}
    for lv in levers:
        basis = (lv.get("cost") or {}).get("price_basis")
        if basis:
            groups.setdefault(basis, []).append(lv["name"])
    if len(groups) == 1:
        return f"Per-query price: {next(iter(groups))}."
    return " ".join(f"Per-query price of {', '.join(names)}: {basis}." for basis, names in groups.items())


def off_label(lv: dict[str, Any]) -> str:
    """A row's off-label share (an API model's answers that were not a label; results.json `off_label`)
    as a whole percentage, "–" for a row without one (a local model ranks whole labels)."""
    off = lv.get("off_label")
    return f"{100 * off['share']:.0f}%" if isinstance(off, dict) and _is_number(off.get("share")) else "–"


def any_off_label(levers: list[dict[str, Any]]) -> bool:
    """Whether any row has an off-label share: the scorecards show the column only then."""
    return any(isinstance(lv.get("off_label"), dict) for lv in levers)


def prompt_form_label(lv: dict[str, Any]) -> str | None:
    """A LoRA row's prompt form as the scorecard, the report and the README figures show it
    ("template only" / "as written", from results.json `artifact.info.prompt_form`; "as written" for an
    adapter row recorded before the form was); None for a row without an adapter (a prompt lever)."""
    info = (lv.get("artifact") or {}).get("info") or {}
    form = info.get("prompt_form")
    if not isinstance(form, dict) or not form.get("chosen"):
        # An adapter recorded before the form was (results.json without `prompt_form`) was trained as written.
        return "as written" if info.get("adapter") else None
    return str(form.get("label") or str(form["chosen"]).replace("_", " "))


def prompt_form_note(lv: dict[str, Any]) -> str | None:
    """The row's prompt form, how it was set and why, e.g. "template only (chosen by prompt_form: auto):
    template_only scores ..." (None: no form recorded)."""
    form = ((lv.get("artifact") or {}).get("info") or {}).get("prompt_form")
    label = prompt_form_label(lv)
    if label is None or not isinstance(form, dict):
        return None
    how = "forced" if form.get("setting") == "forced" else "chosen by prompt_form: auto"
    reason = form.get("reason")
    return f"{label} ({how})" + (f": {reason}" if reason else "")
