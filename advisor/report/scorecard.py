"""The rich terminal scorecard: one row per lever, then the verdict."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.spec import METRICS


def _interval(m: dict[str, float]) -> str:
    if m["ci_low"] == m["ci_high"] == m["value"]:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} ({m['ci_low']:.2f}–{m['ci_high']:.2f})"


def scorecard(results: dict[str, Any]) -> Table:
    """A table from a results.json dict (so a stored run renders the same as a live one)."""
    target = results["target"]
    metric = target["metric"]
    others = [m for m in METRICS[results["kind"]] if m != metric]
    pct = int(round(100 * target["confidence"]))
    table = Table(title=f"{results['task']}: {metric} ≥ {target['threshold']:.2f}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("lever", no_wrap=True)
    table.add_column(f"{metric} ({pct}% CI)", justify="right", no_wrap=True)
    for m in others:
        table.add_column(m, justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("$/1k", justify="right", no_wrap=True)
    table.add_column("setup$", justify="right", no_wrap=True)
    table.add_column("p50/p95 ms", justify="right", no_wrap=True)
    table.add_column("ok", justify="center", no_wrap=True, min_width=3)
    for lv in results["levers"]:
        c = lv["cost"]
        ok = Text("yes", style="bold green") if lv["meets_target"] else Text("no", style="red")
        table.add_row(
            lv["name"],
            _interval(lv["metrics"][metric]),
            *[f"{lv['metrics'][m]['value']:.3f}" if m in lv["metrics"] else "–" for m in others],
            str(lv["n_eval"]),
            f"{c['per_1k_queries_usd']:.4f}",
            f"{c['setup_usd']:.2f}",
            f"{c['latency_ms_p50']:.0f}/{c['latency_ms_p95']:.0f}",
            ok,
        )
    return table


def verdict_panel(results: dict[str, Any]) -> Panel:
    rec = results["recommendation"]
    if rec["lever"]:
        title, style = f"Recommendation: {rec['lever']}", "green"
    else:
        title, style = "Recommendation: none meets the target", "yellow"
    body: list[Any] = [Text(rec["reason"])]
    need = results["target"].get("need")
    if need:
        body.append(Text(f"Target set by: {need}", style="dim"))
    if results.get("eval_limit"):
        body.append(Text(f"Only the first {results['eval_limit']} eval items were scored (--limit).",
                         style="yellow"))
    return Panel(Group(*body), title=title, border_style=style, title_align="left")


def print_results(console: Console, results: dict[str, Any]) -> None:
    console.print(scorecard(results))
    console.print(verdict_panel(results))
