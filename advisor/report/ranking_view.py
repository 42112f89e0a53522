"""How each lever row ranked the labels, and why, as rows both the terminal and the report show.

Reads results.json only: per lever `option_ranking` (method, natural, why, reason, held_out) and
`scoring.sensitivity` (the eval figure under every other method: a check, never a choice).
"""

from __future__ import annotations

from typing import Any

COLUMNS = ["lever", "method", "why", "held-out train items", "eval under other methods (check only)"]

_WHY = {"natural": "natural", "switched": "switched on held-out", "forced": "forced (scoring.option_ranking)",
        "unavailable": "none (API model)"}


def _held(held: dict[str, Any] | None) -> str:
    if not held:
        return "–"
    scores = held.get("scores") or {}
    metric = held.get("metric", "")
    parts = [f"{m} {v:.3f}" for m, v in scores.items()]
    return f"{held.get('n', '?')} {held.get('split', '')} items, {metric}: " + ", ".join(parts)


def _sensitivity(cells: dict[str, Any] | None, metric: str) -> str:
    if not cells:
        return "–"
    out = []
    for method, cell in cells.items():
        value = cell["value"]
        shown = f"{value:.3f}"
        out.append(f"{method} {shown} {cell.get('state', '')}".rstrip())
    return ", ".join(out)


def ranking_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per classification lever row: lever, method, why, held-out scores, eval sensitivity.
    Empty when no row ranked labels (not a classification task, or a results.json from before)."""
    metric = results["target"]["metric"]
    sensitivity = (results.get("scoring") or {}).get("sensitivity") or {}
    rows = []
    for lv in results["levers"]:
        choice = lv.get("option_ranking")
        if not isinstance(choice, dict):
            continue
        rows.append([lv["name"], str(choice.get("method") or "–"), _WHY.get(choice.get("why", ""), "–"),
                     _held(choice.get("held_out")), _sensitivity(sensitivity.get(lv["name"]), metric)])
    return rows


def ranking_caption(results: dict[str, Any]) -> str:
    setting = (results.get("scoring") or {}).get("option_ranking")
    rule = next((lv["option_ranking"]["held_out"].get("rule") for lv in results["levers"]
                 if isinstance(lv.get("option_ranking"), dict) and lv["option_ranking"].get("held_out")), None)
    if setting == "auto":
        text = ("scoring.option_ranking: auto. Each row starts from its natural method (sum for a fine-tuned "
                "adapter, its training objective; calibrated for the base model's prompts) and switches only when "
                "its held-out train items say another is better")
        text += f" ({rule})." if rule else "."
    else:
        text = f"scoring.option_ranking: {setting}, forced on every row."
    return text + (" The last column ranks the same eval log-likelihoods every other way: a sensitivity check, "
                   "never used to choose.")


def ranking_reasons(results: dict[str, Any]) -> list[str]:
    """Each row's reason in words (results.json `option_ranking.reason`)."""
    return [f"{lv['name']}: {lv['option_ranking']['reason']}" for lv in results["levers"]
            if isinstance(lv.get("option_ranking"), dict) and lv["option_ranking"].get("reason")]
