"""The audit in the terminal: a rich table of findings with their examples, and a few lines for the
run's scorecard."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

_STYLE = {"error": "bold red", "warning": "yellow", "removed": "cyan", "info": "dim"}


def audit_table(audit: dict[str, Any], title: str = "data audit") -> Group:
    """One row per finding (check, severity, count, what it means), then each finding's examples as
    whole lines, so a file:line is never cut at the terminal's width."""
    c = audit.get("counts", {})
    table = Table(title=f"{title}: {c.get('train', 0)} train, {c.get('eval', 0)} eval, "
                  f"{c.get('knowledge', 0)} knowledge documents", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("check", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("finding")
    examples: list[Text] = []
    for f in audit.get("findings", []):
        table.add_row(f["check"], Text(f["severity"], style=_STYLE.get(f["severity"], "")), str(f["count"]),
                      f["message"])
        if f["examples"]:
            examples.append(Text(f"{f['check']} ({f['count']}), e.g.:", style="bold"))
        for ex in f["examples"]:
            examples.append(Text(f"  {ex['a']}" + (f"  ↔  {ex['b']}" if ex.get("b") else "")))
            examples.append(Text(f"      {ex['text']}", style="dim"))
    if not audit.get("findings"):
        table.caption = "nothing found"
    return Group(table, *examples)


def audit_summary(audit: dict[str, Any], limit: int = 4) -> list[Text]:
    """A few lines for the scorecard: what was removed, and the largest warnings."""
    findings = audit.get("findings", [])
    removed = [f for f in findings if f["severity"] == "removed"]
    warnings = sorted((f for f in findings if f["severity"] == "warning"), key=lambda f: -f["count"])
    head = f"data audit: {len(warnings)} warning check(s)" + (
        "; removed " + ", ".join(f"{f['count']} ({f['check']})" for f in removed) if removed else "")
    out = [Text(head, style="bold yellow" if warnings else "bold")]
    for f in warnings[:limit]:
        ex = f["examples"][0]["a"] if f["examples"] else ""
        out.append(Text(f"- {f['check']}: {f['count']} — {f['message']}" + (f" (e.g. {ex})" if ex else ""),
                        style="yellow"))
    if len(warnings) > limit:
        out.append(Text(f"- and {len(warnings) - limit} more: `advise audit TASK` lists them all", style="dim"))
    return out
