"""The rich terminal scorecard: one row per lever, then the verdict.

Figures are written by advisor/report/fmt.py, as report.html and report.md write them: a number to
three decimals, an interval as "0.830 (0.787–0.870)", dollars as `usd` writes them, an unknown
price as "–" (never $0).
"""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.record import RunRecord
from advisor.report.fmt import (
    any_off_label,
    interval,
    latency_ms,
    num,
    off_label,
    pct,
    price_basis_note,
    prompt_form_note,
    signed,
    usd,
)
from advisor.spec import METRICS

STATE_MARK = {"meets": ("✓", "bold green"), "fails": ("✗", "red"), "undecided": ("?", "yellow")}


def _state(lv: dict[str, Any]) -> Text:
    """✓ meets / ✗ fails / ? undecided, as the verdict set it (`verdict.state`); ✗ guess when the row is
    no better than the trivial baseline."""
    v = lv["verdict"]
    state = v["state"]
    mark, style = STATE_MARK[state]
    if v["no_better_than_baseline"]:
        return Text(f"{mark} guess", style="red")
    return Text(f"{mark} {state}", style=style)


def interval_bar(low: float, value: float, high: float, threshold: float, width: int = 21) -> Text:
    """A one-line picture of an interval on [0, 1]: ━ the interval, ● the estimate, │ the target."""
    cells = [" "] * width

    def at(x: float) -> int:
        return min(width - 1, max(0, round(x * (width - 1))))

    for i in range(at(low), at(high) + 1):
        cells[i] = "━"
    cells[at(threshold)] = "│"
    cells[at(value)] = "●"
    text = Text("".join(cells))
    t = at(threshold)
    text.stylize("bold", t, t + 1)
    return text


def _target_table(results: dict[str, Any]) -> Table | None:
    """Each lever against the target: state, one-sided bounds, a bar, the items that would settle it."""
    target = results["target"]
    levers = results["levers"]
    if not levers:
        return None
    rule = target["rule"]
    table = _table(f"against the target ({'lower bound' if rule == 'lower_bound' else 'point estimate'} rule, "
                   f"one-sided {pct(target['confidence'])} bounds)")
    for name in ("lever", "state", "0 ─── interval ─── 1", "bounds", "more items"):
        table.add_column(name, justify="right" if name in {"bounds", "more items"} else "left", no_wrap=True)
    rows = list(levers)
    base = results.get("baseline")
    for lv in rows:
        m = lv["metrics"][target["metric"]]
        v = lv["verdict"]
        need = v["more_items_needed"]
        table.add_row(lv["name"], _state(lv), interval_bar(m["ci_low"], m["value"], m["ci_high"], target["threshold"]),
                      f"{num(v['lower_bound'])}–{num(v['upper_bound'])}",
                      f"~{need:,}" if need is not None else "–")
    if base and target["metric"] in base["metrics"]:
        m = base["metrics"][target["metric"]]
        table.add_row(Text(f"({base['name']})", style="dim"), Text("baseline", style="dim"),
                      interval_bar(m["ci_low"], m["value"], m["ci_high"], target["threshold"]), "", "")
    return table


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def scorecard(results: dict[str, Any]) -> Group:
    """Quality and cost tables from a results.json dict (a stored run renders as a live one)."""
    target = results["target"]
    metric = target["metric"]
    # The kind's gold metrics a lever has (none on an eval set without gold: the checks table says the rest).
    present = {m for lv in results["levers"] for m in lv["metrics"]}
    others = [m for m in METRICS[results["kind"]] if m != metric and m in present]
    # Figures a lever measured itself (retrieval recall, MRR) get a column when any lever has them.
    others += sorted({m for lv in results["levers"] for m in lv["metrics"] if m.startswith("retrieval_")})
    quality = _table(f"{results['task']}: quality (target {metric} ≥ {num(target['threshold'], 2)})")
    quality.add_column("lever", no_wrap=True)
    # Two-line headers ("token\nf1") keep the widest table (five levers, retrieval columns) inside
    # an 80-column terminal; the names stay those of results.json.
    quality.add_column(f"{metric}\n({pct(target['confidence'])} CI)", justify="right", no_wrap=True)
    for m in others:
        name = m.removeprefix("retrieval_")
        quality.add_column(name.replace("_", "\n", 1).replace("@", "\n@", 1), justify="right", no_wrap=True)
    # An API model's share of items not answered with a label, beside the metric it qualifies.
    off = any_off_label(results["levers"])
    if off:
        quality.add_column("off-\nlabel", justify="right", no_wrap=True)
    quality.add_column("n", justify="right", no_wrap=True)
    quality.add_column("meets", justify="center", no_wrap=True)
    cost = _table(f"cost at {results['costs']['queries_per_month']:,} queries/month")
    remote = any(lv.get("price") for lv in results["levers"])  # an API model's row records the price it was charged
    timing = ("a local model's one request at a time, an API model's at the run's concurrency" if remote
              else "one request at a time")
    cost.caption = (f"$/1k q: per 1,000 queries; latency: {timing}, in ms. '–': not known (e.g. no "
                    "price for the model). " + price_basis_note(results["levers"])).strip()
    cost.caption_justify = "left"
    # Short headers: the table fits an 80-column terminal with the longest lever name.
    for name in ("lever", "$/1k q", "$/mo", "setup $", "upkeep $/mo", "1st year $", "p50/p95 ms"):
        cost.add_column(name, justify="left" if name == "lever" else "right", no_wrap=True)
    for lv in results["levers"]:
        c = lv["cost"]
        ok = _state(lv)
        quality.add_row(
            lv["name"],
            interval(lv["metrics"].get(metric)),
            *[num((lv["metrics"].get(m) or {}).get("value")) for m in others],
            *([off_label(lv)] if off else []),
            str(lv["n_eval"]),
            ok,
        )
        cost.add_row(
            lv["name"],
            usd(c["per_1k_queries_usd"]),
            usd(c["monthly_usd"]),
            usd(c["setup_usd"]),
            usd(c["upkeep_usd_per_month"]),
            usd(c["first_year_usd"]),
            latency_ms(c),
        )
    against = _target_table(results)
    return Group(quality, *([against] if against is not None else []), cost)


def curve_tables(results: dict[str, Any]) -> list[Any]:
    """One table per measured learning curve: train size against the target metric, and what the fit says."""
    out: list[Any] = []
    for lever, curve in (results.get("learning_curves") or {}).items():
        table = _table(f"{lever}: learning curve ({curve['metric']}, target {num(curve['threshold'], 2)})")
        for name in ("fraction", "examples", curve["metric"], "train s", "adapter"):
            table.add_column(name, justify="left" if name == "adapter" else "right", no_wrap=True)
        for p in curve["points"]:
            table.add_row(num(p["fraction"], 2), str(p["n_train"]), num(p["metric"]),
                          num(p["train_seconds"], 0), p["adapter"])
        out += [table, Text(f"{lever}: {curve['message']}.", style="bold"), Text("")]
    return out


def prompt_choice_tables(results: dict[str, Any]) -> list[Any]:
    """Prompt levers that chose on a dev split: every variant's or candidate's dev score, the one
    chosen, its eval score and the dev-to-eval gap (how much the choice flattered itself)."""
    out: list[Any] = []
    for lv in results["levers"]:
        details = lv.get("details") or {}
        summary = details.get("search") or details.get("prompt_choice")
        if not summary:
            continue
        rows = summary.get("trials") or details.get("prompt_variants") or []
        tie = (summary.get("tie_break") or [None])[0]  # the metric that breaks a tie on the target one
        table = _table(f"{lv['name']}: {summary['metric']} on {summary['dev_items']} dev items (from train)")
        for name in ("candidate", "shots", "dev", *([f"dev\n{tie}"] if tie else []), "chosen"):
            table.add_column(name, justify="left" if name == "candidate" else "right", no_wrap=True)
        for r in rows:
            extra = [num(r.get("dev_metrics", {}).get(tie))] if tie else []
            table.add_row(r.get("instruction", r.get("name", "")), str(r.get("shots", "–")), num(r["dev_score"]),
                          *extra, "✓" if r["chosen"] else "")
        out += [table, Text(
            f"{lv['name']}: chosen on dev {num(summary['dev_score'])}, on eval {num(summary['eval_score'])} "
            f"(gap {signed(summary['dev_eval_gap'])}); choosing cost {num(summary['setup_seconds'], 0)} s of "
            f"compute (${usd(summary['setup_usd'])}), counted as setup.", style="bold"), Text("")]
    return out


def checks_tables(results: dict[str, Any]) -> list[Any]:
    """Pass rate per lever of each of the task's checks (advisor.checks), and why outputs failed."""
    from advisor.report.checks_view import failure_lines, terminal_rows

    cols, rows = terminal_rows(results)
    if not cols:
        return []
    table = _table("checks: pass rate per lever (every output, no gold needed)")
    table.add_column("lever")
    for c in cols:
        table.add_column(c, justify="right")
    for row in rows:
        table.add_row(*row)
    return [table, *[Text(f"- {line}") for line in failure_lines(results)]]


def ranking_table(results: dict[str, Any]) -> list[Any]:
    """Classification: each row's label-ranking method, why, its held-out scores, and the eval
    figure under every other method (a sensitivity check, never a choice)."""
    from advisor.report.ranking_view import COLUMNS, ranking_caption, ranking_rows

    rows = ranking_rows(results)
    if not rows:
        return []
    table = _table("label ranking per lever row")
    for name in COLUMNS:
        table.add_column(name, justify="left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    table.caption = ranking_caption(results)
    table.caption_justify = "left"
    return [table, Text("")]


def verdict_panel(results: dict[str, Any]) -> Panel:
    rec = results["verdict"]
    title, style = {"recommend": (f"Recommendation: {rec['lever']}", "green"),
                    "undecided": ("Recommendation: undecided, more eval items needed", "yellow"),
                    "none": ("Recommendation: none meets the target", "yellow")}[rec["outcome"]]
    body: list[Any] = [Text(rec["reason"])]
    reasons = [r for r in rec.get("reasons") or [] if r not in (rec.get("notes") or [])]
    if reasons:
        body.append(Text("Why:\n" + "\n".join(f"- {r}" for r in reasons)))
    if rec.get("notes"):
        body.append(Text("Where the others lose points:\n" + "\n".join(f"- {n}" for n in rec["notes"])))
    base = results.get("baseline")
    metric = results["target"].get("metric")
    if base and metric in base.get("metrics", {}):
        body.append(Text(f"Trivial baseline ({base['name']}: {json.dumps(base['answer'])}) scores "
                         f"{metric} {num(base['metrics'][metric]['value'])} at no cost.", style="dim"))
    need = results["target"].get("need")
    if need:
        body.append(Text(f"Target set by: {need}", style="dim"))
    if results.get("eval_limit"):
        body.append(Text(f"Only the first {results['eval_limit']} eval items were scored (--limit).",
                         style="yellow"))
    return Panel(Group(*body), title=title, border_style=style, title_align="left")


def input_notes(results: dict[str, Any]) -> list[Text]:
    """Lines about how the inputs were read and scored: items truncated to fit the model's context
    (`details.truncated`), an API model's classification path and off-label answers
    (`classification_choice`, `off_label`), a LoRA row's prompt form (`artifact.info.prompt_form`)
    and label-ranking warnings (`scoring.warnings`)."""
    notes = []
    for lv in results["levers"]:
        form = prompt_form_note(lv)
        if form:
            notes.append(Text(f"{lv['name']}: prompt form {form}.", style="dim"))
        n = (lv.get("details") or {}).get("truncated") or 0
        if n:
            notes.append(Text(f"{lv['name']}: {n} of {lv['n_eval']} eval item(s) truncated to fit the model's "
                              "context (prompt.on_overflow: truncate); their scores are on the cut input.",
                              style="yellow"))
        choice = lv.get("classification_choice")
        if isinstance(choice, dict) and choice.get("reason"):
            notes.append(Text(f"{lv['name']}: classification path {choice['reason']}.", style="dim"))
        off = lv.get("off_label")
        for key in ("warning", "approximate"):
            if isinstance(off, dict) and off.get(key):
                notes.append(Text(f"warning: {lv['name']}: {off[key]}.", style="yellow"))
    scoring = results.get("scoring") or {}
    for w in scoring.get("warnings") or []:
        notes.append(Text(f"warning: {w}", style="yellow"))
    return notes


def print_results(console: Console, record: RunRecord) -> None:
    """The scorecard, notes, tables and verdict of one run record (advisor.record), as the terminal shows them."""
    results = record.to_json()
    console.print(scorecard(results))
    for note in input_notes(results):
        console.print(note)
    from advisor.report.sections import compute_lines

    for line in compute_lines(results):
        console.print(line, style="dim", soft_wrap=True)
    for part in curve_tables(results):
        console.print(part)
    for part in checks_tables(results):
        console.print(part)
    for part in prompt_choice_tables(results):
        console.print(part)
    for part in ranking_table(results):
        console.print(part)
    print_judge(console, record)
    if results.get("audit"):
        from advisor.audit.render import audit_summary

        for line in audit_summary(results["audit"]):
            console.print(line)
    console.print(verdict_panel(results))


def print_length_probe(console: Console, record: RunRecord) -> None:
    """Per criterion and row: the judge's pass rate by output-length tercile and the point-biserial r of
    length and grade (advisor.judge.bias); then any lead the length bins take away, flagged."""
    for crit, probe in (record.judge_bias or {}).items():
        if not isinstance(probe, dict) or not probe.get("cuts"):
            continue
        cuts = probe["cuts"]
        head = f"{crit} by length (terciles ≤{cuts[0]:.0f}, ≤{cuts[1]:.0f}, >{cuts[1]:.0f} words):"
        parts = []
        for name, e in (probe.get("levers") or {}).items():
            rates = "/".join("-" if x is None else f"{x:.2f}" for x in e["by_tercile"])
            r = "r -" if e.get("r") is None else f"r {e['r']:+.2f} (p={e['p']:.2g})"
            parts.append(f"{name} {rates}, {r}")
        console.print(head + " " + "; ".join(parts))
        for flag in probe.get("flags") or []:
            console.print(f"warning: {flag}")


def print_judge(console: Console, record: RunRecord) -> None:
    """The rubric's table: per row and criterion, the judge's rate over scored items, the unscored count,
    human grades, kappa with its interval and state, and the PPI interval on the rate people would give;
    then each row's judge cost, apart from the lever's. Nothing without a rubric."""
    from rich.table import Table

    if not record.judge:
        return
    table = Table(title="Judge (rubric criteria)")
    for col in ("row", "criterion", "judge rate", "unscored", "human", "kappa", "PPI rate"):
        table.add_column(col)
    for lever, crits in record.judge.items():
        if not isinstance(crits, dict):
            continue
        for crit, e in crits.items():
            if not isinstance(e, dict):
                continue
            rate = e.get("judge_rate")
            a, p = e.get("agreement"), e.get("ppi")
            kappa = (f"{a['kappa']:.2f} [{a['kappa_low']:.2f}, {a['kappa_high']:.2f}] {a['state']}"
                     if isinstance(a, dict) else "-")
            ppi = f"{p['value']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]" if isinstance(p, dict) else "-"
            table.add_row(lever, crit, "-" if rate is None else f"{rate:.2f} of {e.get('scored')}",
                          str(e.get("unscored")), str(e.get("human")), kappa, ppi)
    console.print(table)
    print_length_probe(console, record)
    for lv in record.levers:
        judge = lv.details.get("judge")
        crits = judge.get("criteria") if isinstance(judge, dict) else None
        for crit, c in (crits or {}).items():
            if isinstance(c, dict) and c.get("samples"):
                ids = ", ".join(c.get("flip_ids") or []) or "none"
                console.print(f"{lv.name} {crit}: {c['samples']} grades per output; {c.get('flips')} items flip "
                              f"across them ({ids}); {c.get('ties')} ties left unscored")
        if isinstance(judge, dict) and isinstance(judge.get("cost"), dict):
            c = judge["cost"]
            usd = "price unknown" if c.get("usd") is None else f"${c['usd']:.4f}"
            console.print(f"judge cost of {lv.name} (apart from the lever's): {c.get('requests')} requests sent, "
                          f"{c.get('cached')} grades reused, {c.get('tokens_in')} tokens in, "
                          f"{c.get('tokens_out')} out, {usd}")
            for w in judge.get("warnings") or []:
                console.print(f"warning: {w}")
