"""The report's sections, in the order a reader needs them, as plain text, tables and charts.

Every string here is plain text: the HTML renderer escapes it (Jinja2 autoescape) and the
markdown renderer escapes it for markdown. Sections that read keys a run may not have (the
verdict's states and comparisons, break-even volumes, the audit, prompt search) are written only
when those keys are present, so an older results.json renders too.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from advisor.report.blocks import Bullets, Chart, Heading, Paragraph, Section, Table
from advisor.report.charts import (
    CostLine,
    QualityPoint,
    cost_quality_svg,
    pareto_frontier,
    volume_svg,
)
from advisor.report.fmt import (
    any_off_label,
    cut,
    interval,
    latency_ms,
    num,
    off_label,
    pct,
    price_basis_note,
    show_value,
    usd,
)
from advisor.spec import METRICS

_STATE_TEXT = {"meets": "✓ meets", "fails": "✗ fails", "undecided": "? undecided"}
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|auth)", re.I)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|Bearer\s+\S+)")


# -- helpers --------------------------------------------------------------------------------------


def redact_command(argv: list[str]) -> str:
    """The command line with any secret-looking value replaced: `--set x.api_key=...`, sk-... keys."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and _SECRET_KEY.search(key):
            arg = f"{key}=***"
        out.append(_SECRET_VALUE.sub("***", arg))
    return shlex.join(out)


def _cost(lv: dict[str, Any], key: str) -> Any:
    return (lv.get("cost") or {}).get(key)


# -- sections -------------------------------------------------------------------------------------


def task_section(r: dict[str, Any]) -> Section:
    t = r["target"]
    levers = r["levers"]
    n_eval = max((lv.get("n_eval") or 0 for lv in levers), default=0)
    blocks: list[Any] = [
        Paragraph(f"{r['task']}: a {r['kind']} task. Target: {t['metric']} ≥ {num(t['threshold'], 2)}, "
                  f"judged at {pct(t.get('confidence'))} confidence on {n_eval} held-out eval items, "
                  f"priced at {r['costs']['queries_per_month']:,} queries a month.", "lead"),
    ]
    need = t.get("need")
    blocks.append(Paragraph(f"The business need behind the target: {need}" if need else
                            "The task file gives no reason for the target (target.need); ask for one before "
                            "relying on the verdict.", "p" if need else "warn"))
    if r.get("eval_limit"):
        blocks.append(Paragraph(f"Only the first {r['eval_limit']} eval items were scored (--limit): a quick "
                                "look, not a verdict.", "warn"))
    names = ", ".join(lv["name"] for lv in levers) or "none"
    blocks.append(Paragraph(f"Levers compared, cheapest rung first: {names}. Model: "
                            f"{(r.get('provenance') or {}).get('model', '–')}."))
    return Section("task", "Task and business need", blocks)


VERDICT_TITLE = {"recommend": "Recommendation: {lever}",
                 "undecided": "Recommendation: undecided, more eval items needed (closest: {closest})",
                 "none": "Recommendation: none of the levers meets the target (closest: {closest})"}


def verdict_section(r: dict[str, Any]) -> Section:
    rec, t = r["verdict"], r["target"]
    blocks: list[Any] = [Paragraph(VERDICT_TITLE[rec["outcome"]].format(lever=rec.get("lever"),
                                                                        closest=rec.get("closest") or "–"),
                                   "verdict" if rec["outcome"] == "recommend" else "verdict-none")]
    blocks.append(Paragraph(rec.get("reason") or ""))
    if rec.get("reasons"):
        blocks += [Heading("Reasons"), Bullets([str(x) for x in rec["reasons"]])]
    if rec.get("next_step") and rec["outcome"] != "recommend" and rec["next_step"] not in (rec.get("reason") or ""):
        blocks.append(Paragraph(f"Next step: {rec['next_step']}."))
    rule = ("a lever meets the target only when its one-sided lower confidence bound reaches it"
            if t["rule"] == "lower_bound" else "a lever meets the target when its point estimate reaches it")
    blocks.append(Paragraph(f"Decision rule: {t['rule']} ({rule}), non-inferiority margin {num(t['margin'])}.",
                            "note"))
    if rec.get("notes"):
        blocks += [Heading("Where the other levers lose points"), Bullets([str(x) for x in rec["notes"]])]
    comparisons = rec.get("comparisons") or []
    if comparisons:
        blocks.append(Heading("Paired comparisons on the same eval items"))
        blocks.append(Table(
            ["lever", "against", "metric", "difference (interval)", "test", "p", "significantly better",
             "non-inferior"],
            [[str(c["lever"]), str(c["against"]), str(c["metric"]), interval(c["difference"]), str(c["test"]),
              num(c.get("p_value")), _yes(c["significantly_better"]), _yes(c["non_inferior"])]
             for c in comparisons],
            numeric=[False, False, False, True, False, True, False, False]))
        blocks.append(Bullets([str(c["message"]) for c in comparisons]))
    return Section("verdict", "Verdict", blocks)


def _yes(v: Any) -> str:
    return "yes" if v is True else "no" if v is False else "–"


def scorecard_section(r: dict[str, Any]) -> Section:
    t = r["target"]
    metric = t["metric"]
    # The kind's headline metrics and the retrieval ones, as in the terminal scorecard (A4 has room
    # for no more); every metric a lever has is in its detail section.
    present = {m for lv in r["levers"] for m in (lv.get("metrics") or {})}
    others = [m for m in METRICS.get(r["kind"], ()) if m != metric and m in present]
    others += sorted(m for m in present if m.startswith("retrieval_"))
    quality_rows, styles = [], []
    off = any_off_label(r["levers"])  # an API model's share of answers that were not a label
    for lv in r["levers"]:
        v = lv["verdict"]
        s = v["state"]
        label = _STATE_TEXT[s]
        if s == "undecided" and v.get("more_items_needed"):
            label += f" (about {v['more_items_needed']:,} more items)"
        if v["no_better_than_baseline"]:
            label += "; no better than the baseline"
        m = lv.get("metrics") or {}
        quality_rows.append([lv["name"], interval(m.get(metric)), *[num((m.get(o) or {}).get("value")) for o in others],
                             *([off_label(lv)] if off else []), str(lv.get("n_eval", "–")), label])
        styles.append(s)
    base = r.get("baseline")
    if isinstance(base, dict):
        m = base.get("metrics") or {}
        quality_rows.append([f"baseline: {base.get('name', '?')}", interval(m.get(metric)),
                             *[num((m.get(o) or {}).get("value")) for o in others], *(["–"] if off else []), "–",
                             "for comparison"])
        styles.append("baseline")
    level = pct(t.get("confidence"))
    quality = Table(["lever", f"{metric} ({level} interval)", *others, *(["off-label"] if off else []), "n", "target"],
                    quality_rows, caption=f"Quality on the eval set; target {metric} ≥ {num(t['threshold'], 2)}."
                    + (" Off-label: the share of items where the model's own answer was not a label." if off else ""),
                    numeric=[False, True, *[True] * len(others), *([True] if off else []), True, False],
                    row_styles=styles)
    cost_rows = []
    for lv in r["levers"]:
        c = lv.get("cost") or {}
        cost_rows.append([lv["name"], usd(c.get("per_1k_queries_usd")), usd(c.get("monthly_usd")),
                          usd(c.get("first_year_usd")), usd(c.get("setup_usd")), usd(c.get("upkeep_usd_per_month")),
                          latency_ms(c)])
    cost = Table(["lever", "$ per 1k queries", "$ per month", "first year $", "setup $", "upkeep $/month",
                  "latency p50 / p95 ms"], cost_rows,
                 caption=f"Cost at {r['costs']['queries_per_month']:,} queries a month; first year = setup + 12 "
                         "months; latency of one request at a time. '–': not known (e.g. no price for the model). "
                         + price_basis_note(r["levers"]),
                 numeric=[False, True, True, True, True, True, True])
    return Section("scorecard", "Scorecard", [quality, cost, *cost_assumptions(r)])


def cost_assumptions(r: dict[str, Any]) -> list[Table]:
    """The stated inputs behind every dollar figure: task.yaml `costs:` and, per lever, the compute
    calibration or the token price's source. Empty for a results.json written before they were kept."""
    rows = [[k, show_value(v)] for k, v in (r.get("costs") or {}).items()]
    for lv in r["levers"]:
        c = lv.get("cost") or {}
        cal = c.get("calibration")
        if isinstance(cal, dict) and cal.get("calibrated"):
            rows.append([f"{lv['name']}: compute price",
                         f"{show_value(cal.get('seconds_per_prompt_token'))} s per prompt token, "
                         f"{show_value(cal.get('seconds_per_output_token'))} s per generated token, calibrated "
                         f"{cal['calibrated']} on this machine (key {cal.get('key', '?')})"])
        price = lv.get("price") or c.get("price")
        if isinstance(price, dict) and price.get("source"):
            rows.append([f"{lv['name']}: token price",
                         f"${show_value(price.get('input_per_1m_usd'))} per 1M input tokens, "
                         f"${show_value(price.get('output_per_1m_usd'))} per 1M output tokens "
                         f"(source: {show_value(price.get('source'))})"])
    if not rows:
        return []
    return [Table(["assumption", "value"], rows,
                  caption="What the dollar figures above rest on: the task's stated costs (task.yaml `costs:`; "
                          "engineer hours are counted where a lever needs them: curation for fine-tuning, "
                          "retraining and re-indexing for upkeep) and how each lever's compute or tokens were priced.")]


def quality_points(r: dict[str, Any]) -> list[QualityPoint]:
    metric = r["target"]["metric"]
    out = []
    for lv in r["levers"]:
        m = (lv.get("metrics") or {}).get(metric)
        if not m:
            continue
        out.append(QualityPoint(lv["name"], _cost(lv, "monthly_usd"), m["value"], m.get("ci_low", m["value"]),
                                m.get("ci_high", m["value"]), lv["verdict"]["state"]))
    return out


def cost_quality_section(r: dict[str, Any]) -> Section:
    t = r["target"]
    points = quality_points(r)
    base = r.get("baseline")
    base_point = None
    if isinstance(base, dict) and isinstance(((base.get("metrics") or {}).get(t["metric"]) or {}).get("value"),
                                             (int, float)):
        base_point = (str(base.get("name", "baseline")), float(base["metrics"][t["metric"]]["value"]))
    volume = int(r["costs"]["queries_per_month"])
    svg = cost_quality_svg(points, metric=t["metric"], threshold=float(t["threshold"]), volume=volume,
                           baseline=base_point)
    frontier = pareto_frontier(points)
    unpriced = [p.name for p in points if p.monthly_usd is None]
    free = [p.name for p in points if p.monthly_usd == 0]
    caption = ("Each lever at its monthly cost (log scale) and its " + t["metric"] + " with the interval as "
               "whiskers; the dashed line is the target; filled points lie on the Pareto frontier (no other "
               "lever is both cheaper and better): " + (", ".join(frontier) or "none") + ".")
    if free:
        caption += " At $0 a month, drawn at the axis' left end: " + ", ".join(free) + "."
    if unpriced:
        caption += " Not drawn, price unknown: " + ", ".join(unpriced) + "."
    return Section("cost-quality", "Cost against quality",
                   [Chart("cost_quality", "Cost against quality", svg, caption)])


def cost_lines(r: dict[str, Any]) -> list[CostLine]:
    out = []
    for lv in r["levers"]:
        c = lv.get("cost") or {}
        per_1k, setup, upkeep = c.get("per_1k_queries_usd"), c.get("setup_usd"), c.get("upkeep_usd_per_month")
        if not all(isinstance(x, (int, float)) for x in (per_1k, setup, upkeep)):
            continue
        out.append(CostLine(lv["name"], setup / 12 + upkeep, per_1k / 1000))
    return out


def volume_section(r: dict[str, Any]) -> Section:
    lines = cost_lines(r)
    rows = r["verdict"]["break_even"]
    marks = [(float(b["queries_per_month"]), str(b.get("dearer"))) for b in rows
             if isinstance(b.get("queries_per_month"), (int, float)) and b["queries_per_month"] > 0]
    volume = int(r["costs"]["queries_per_month"]) or 1
    svg = volume_svg(lines, volume=volume, marks=marks)
    left_out = [lv["name"] for lv in r["levers"] if lv["name"] not in {ln.name for ln in lines}]
    caption = ("Cost per month in the first year (setup spread over twelve months, plus upkeep, plus per-query "
               "cost) against queries per month; dots mark break-even volumes, where a lever that is dearer to "
               "set up becomes the cheaper one.")
    if left_out:
        caption += " Not drawn, price unknown: " + ", ".join(left_out) + "."
    blocks: list[Any] = [Chart("volume", "Cost against volume", svg, caption)]
    if rows:
        blocks.append(Table(["cheaper to set up", "dearer to set up", "break-even queries/month", "what it means"],
                            [[str(b.get("cheaper")), str(b.get("dearer")),
                              f"{b['queries_per_month']:,.0f}" if isinstance(b.get("queries_per_month"), (int, float))
                              else "never", str(b.get("message") or "")] for b in rows],
                            caption="Break-even volumes (the verdict's).", numeric=[False, False, True, False]))
    else:
        blocks.append(Paragraph("The verdict lists no break-even volume: it computes them between the levers "
                                "that meet the target, and fewer than two do (or their cost lines never cross).",
                                "note"))
    return Section("volume", "Cost against volume", blocks)


def data_section(r: dict[str, Any]) -> Section:
    prov = r.get("provenance") or {}
    data = prov.get("data") or {}
    rows = []
    for split in ("train", "eval"):
        n = data.get(f"n_{split}")
        rows.append([split, str(n) if n is not None else "–", str(data.get(split, "–"))])
    for key, value in sorted(data.items()):
        if key in {"train", "eval", "n_train", "n_eval", "leakage_removed"} or not isinstance(value, (str, int)):
            continue
        rows.append([key, "–", str(value)])
    blocks: list[Any] = [Table(["split", "items", "content hash"], rows,
                               caption="Sizes after leakage removal; hashes identify the exact data scored.",
                               numeric=[False, True, False])]
    removed = data.get("leakage_removed") or []
    if removed:
        shown = ", ".join(str(x) for x in removed[:10]) + (" …" if len(removed) > 10 else "")
        blocks.append(Paragraph(f"{len(removed)} train example(s) shared an input with eval and were left out of "
                                f"training and few-shot examples (leakage): {shown}.", "note"))
    else:
        blocks.append(Paragraph("No train example shared an input with eval (no leakage removed).", "note"))
    audit = r.get("audit")
    if isinstance(audit, dict):
        blocks.append(Heading("Data audit"))
        findings = audit.get("findings") or []
        if findings:
            blocks.append(Table(["check", "severity", "count", "finding"],
                                [[str(f.get("check")), str(f.get("severity")), str(f.get("count")),
                                  str(f.get("message"))] for f in findings], numeric=[False, False, True, False]))
            examples = [f"{f.get('check')}: {e.get('a')}" + (f" ↔ {e.get('b')}" if e.get("b") else "")
                        + f": {cut(str(e.get('text', '')), 160)}"
                        for f in findings for e in (f.get("examples") or [])[:3]]
            if examples:
                blocks += [Paragraph("Examples (file:line):", "note"), Bullets(examples)]
        else:
            blocks.append(Paragraph("The audit found nothing to report.", "note"))
        if audit.get("strict"):
            blocks.append(Paragraph("The audit ran in strict mode: any warning fails the run.", "note"))
    return Section("data", "Data", blocks)


def provenance_section(r: dict[str, Any]) -> Section:
    prov = r.get("provenance") or {}
    git = prov.get("git") or {}
    models = sorted({str(lv["artifact"]["backend"]) for lv in r["levers"]})
    commit = git.get("commit") or "unknown"
    rows = [
        ["model", str(prov.get("model", "–"))],
        ["model identities", ", ".join(models) or "–"],
        ["task file", str(prov.get("task_file") or "–")],
        ["task hash", str(prov.get("task_sha256", "–"))],
        ["prompt hash", str(prov.get("prompt_sha256", "–"))],
        ["commit", commit + (" (uncommitted changes)" if git.get("dirty") else "")],
        ["versions", ", ".join(f"{k} {v}" for k, v in sorted((prov.get("versions") or {}).items()))],
        ["platform", str(prov.get("platform", "–"))],
        ["run created", str(prov.get("created", "–"))],
        ["command", redact_command([str(a) for a in prov.get("argv") or []]) or "–"],
    ]
    scoring = r.get("scoring")
    if isinstance(scoring, dict) and scoring.get("option_ranking"):
        rows.append(["option ranking", str(scoring["option_ranking"])])
    rows += compute_rows(r)
    return Section("provenance", "Provenance", [Table(["", ""], rows)])


def compute_lines(r: dict[str, Any]) -> list[str]:
    """One line per local model for the terminal: the precision it scored in and why (and when it was
    measured), the threads chosen."""
    out = []
    for identity, info in ((r.get("compute") or {}).get("models") or {}).items():
        scoring = info.get("scoring") or {}
        if not scoring:
            continue
        why = (scoring.get("reason") if scoring.get("why") == "measured"  # it starts with the precision kept
               else f"{scoring.get('precision')} ({scoring.get('reason')})")
        threads = _thread_counts(info.get("threads") or {})
        out.append(f"{identity.split('@')[0]} computed in {why}{_measured_when(scoring)}"
                   + (f"; threads: {threads}" if threads else ""))
    return out


def _measured_when(scoring: dict[str, Any]) -> str:
    """' (measured <UTC time>, cached)' for a measured precision choice; empty otherwise."""
    if not scoring.get("measured_at"):
        return ""
    return f" (measured {scoring['measured_at']}{', cached' if scoring.get('cached') else ''})"


def _thread_counts(threads: dict[str, Any]) -> str:
    """How often each thread count won its timing check: '1 thread at 3 of 4 checks, 2 threads at 1 of 4'."""
    counts = threads.get("chosen_counts") or {}
    total = sum(counts.values())
    return ", ".join(f"{n} thread{'s' if n != '1' else ''} at {k} of {total} checks" for n, k in sorted(counts.items()))


def compute_rows(r: dict[str, Any]) -> list[list[str]]:
    """How the local models computed (results.json `compute`, advisor.compute): the CPU and its
    flags, each model's scoring precision and why, the thread counts chosen; each LoRA row's
    training precision."""
    compute = r.get("compute")
    if not isinstance(compute, dict):
        return []
    flags = ", ".join(compute.get("cpu_flags") or []) or "none of the bf16/AMX flags"
    rows = [["CPU", f"{compute.get('cpu') or '–'} ({flags})"]]
    for identity, info in (compute.get("models") or {}).items():
        scoring = info.get("scoring") or {}
        if scoring:
            rows.append([f"precision, {identity}", str(scoring.get("reason")) + _measured_when(scoring)])
        threads = info.get("threads") or {}
        if threads.get("setting") not in (None, "auto"):
            rows.append([f"threads, {identity}", f"{threads['setting']} on {threads.get('cores')} cores, forced "
                         "(compute.threads)"])
        elif threads.get("chosen_counts"):
            rows.append([f"threads, {identity}", f"measured on {threads.get('cores')} cores: {_thread_counts(threads)} (one thread "
                         "against one per core, timed before each stage and every minute)"])
    for lv in r.get("levers") or []:
        info = (lv.get("artifact") or {}).get("info") or {}
        choice = info.get("training_precision_choice")
        if isinstance(choice, dict):
            rows.append([f"training precision, {lv['name']}", str(choice.get('reason'))])
    return rows


def ranking_section(r: dict[str, Any]) -> Section | None:
    """Classification: how each row ranked the labels and why, and every warning that the verdict
    rests on a choice the run made (results.json `scoring.warnings`)."""
    from advisor.report.ranking_view import COLUMNS, ranking_caption, ranking_reasons, ranking_rows

    rows = ranking_rows(r)
    warnings = (r.get("scoring") or {}).get("warnings") or []
    if not rows and not warnings:
        return None
    blocks: list[Any] = []
    if rows:
        blocks.append(Table(COLUMNS, rows, caption=ranking_caption(r)))
        blocks.append(Bullets(ranking_reasons(r)))
    blocks += [Paragraph(w, style="warn") for w in warnings]
    title = "Label ranking and the choices the verdict rests on" if rows else "Choices the verdict rests on"
    return Section("ranking", title, blocks)
