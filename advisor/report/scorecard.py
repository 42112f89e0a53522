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


def _usd(x: float | None) -> str:
    if x is None:  # an unknown price is unknown, never $0
        return "unknown"
    return f"{x:,.2f}" if x >= 1 or x == 0 else f"{x:.4f}"


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def scorecard(results: dict[str, Any]) -> Group:
    """Quality and cost tables from a results.json dict (a stored run renders as a live one)."""
    target = results["target"]
    metric = target["metric"]
    others = [m for m in METRICS[results["kind"]] if m != metric]
    # Figures a lever measured itself (retrieval recall, MRR) get a column when any lever has them.
    others += sorted({m for lv in results["levers"] for m in lv["metrics"] if m.startswith("retrieval_")})
    pct = int(round(100 * target["confidence"]))
    quality = _table(f"{results['task']}: quality (target {metric} ≥ {target['threshold']:.2f})")
    quality.add_column("lever", no_wrap=True)
    # Two-line headers ("token\nf1") keep the widest table (five levers, retrieval columns) inside
    # an 80-column terminal; the names stay those of results.json.
    quality.add_column(f"{metric}\n({pct}% CI)", justify="right", no_wrap=True)
    for m in others:
        name = m.removeprefix("retrieval_")
        quality.add_column(name.replace("_", "\n", 1).replace("@", "\n@", 1), justify="right", no_wrap=True)
    quality.add_column("n", justify="right", no_wrap=True)
    quality.add_column("meets", justify="center", no_wrap=True)
    cost = _table(f"cost at {results.get('queries_per_month', 0):,} queries/month")
    cost.caption = "$/1k q: per 1,000 queries; latency: one request at a time, in ms"
    cost.caption_justify = "left"
    # Short headers: the table fits an 80-column terminal with the longest lever name.
    for name in ("lever", "$/1k q", "setup $", "upkeep $/mo", "1st year $", "p50/p95 ms"):
        cost.add_column(name, justify="left" if name == "lever" else "right", no_wrap=True)
    for lv in results["levers"]:
        c = lv["cost"]
        ok = Text("yes", style="bold green") if lv["meets_target"] else Text("no", style="red")
        quality.add_row(
            lv["name"],
            _interval(lv["metrics"][metric]),
            *[f"{lv['metrics'][m]['value']:.3f}" if m in lv["metrics"] else "–" for m in others],
            str(lv["n_eval"]),
            ok,
        )
        cost.add_row(
            lv["name"],
            _usd(c["per_1k_queries_usd"]),
            _usd(c["setup_usd"]),
            _usd(c["upkeep_usd_per_month"]),
            _usd(c["first_year_usd"]),
            f"{c['latency_ms_p50']:.0f} / {c['latency_ms_p95']:.0f}",
        )
    return Group(quality, cost)


def curve_tables(results: dict[str, Any]) -> list[Any]:
    """One table per measured learning curve: train size against the target metric, and what the fit says."""
    out: list[Any] = []
    for lever, curve in (results.get("learning_curves") or {}).items():
        table = _table(f"{lever}: learning curve ({curve['metric']}, target {curve['threshold']:.2f})")
        for name in ("fraction", "examples", curve["metric"], "train s", "adapter"):
            table.add_column(name, justify="left" if name == "adapter" else "right", no_wrap=True)
        for p in curve["points"]:
            table.add_row(f"{p['fraction']:.2f}", str(p["n_train"]), f"{p['metric']:.3f}",
                          f"{p['train_seconds']:.0f}", p["adapter"])
        out += [table, Text(f"{lever}: {curve['message']}.", style="bold"), Text("")]
    return out


def verdict_panel(results: dict[str, Any]) -> Panel:
    rec = results["recommendation"]
    if rec["lever"]:
        title, style = f"Recommendation: {rec['lever']}", "green"
    else:
        title, style = "Recommendation: none meets the target", "yellow"
    body: list[Any] = [Text(rec["reason"])]
    if rec.get("notes"):
        body.append(Text("Where the others lose points:\n" + "\n".join(f"- {n}" for n in rec["notes"])))
    need = results["target"].get("need")
    if need:
        body.append(Text(f"Target set by: {need}", style="dim"))
    if results.get("eval_limit"):
        body.append(Text(f"Only the first {results['eval_limit']} eval items were scored (--limit).",
                         style="yellow"))
    return Panel(Group(*body), title=title, border_style=style, title_align="left")


def print_results(console: Console, results: dict[str, Any]) -> None:
    console.print(scorecard(results))
    for part in curve_tables(results):
        console.print(part)
    console.print(verdict_panel(results))
