"""The report's judge section: per row and criterion the judge's rate, unscored grades, human grades,
kappa and the PPI++ interval (results.json `judge`), the flips across samples (`details.judge`), and
the length-bias probe (`judge_bias`, advisor.judge.bias) with its warnings. Absent without a rubric."""

from __future__ import annotations

from typing import Any

from advisor.report.blocks import Paragraph, Section, Table


def _f(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def judge_section(r: dict[str, Any]) -> Section | None:
    """The section, or None when the run has no rubric grades."""
    judge, bias = r.get("judge") or {}, r.get("judge_bias") or {}
    if not judge and not bias:
        return None
    rows = []
    for lever, crits in judge.items():
        for crit, e in (crits or {}).items():
            a, p = e.get("agreement"), e.get("ppi")
            kappa = (f"{a['kappa']:.2f} [{a['kappa_low']:.2f}, {a['kappa_high']:.2f}] {a['state']}"
                     if isinstance(a, dict) else "-")
            ppi = f"{p['value']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]" if isinstance(p, dict) else "-"
            rows.append([lever, crit, f"{_f(e.get('judge_rate'))} of {e.get('scored')}", str(e.get("unscored")),
                         str(e.get("human")), kappa, ppi])
    blocks: list[Any] = []
    if rows:
        blocks.append(Table(["row", "criterion", "judge rate", "unscored", "human", "kappa", "PPI rate"], rows,
                            caption="Unscored grades are neither pass nor fail. Kappa: Cohen's, with a bootstrap "
                            "interval, against rubric.min_kappa; PPI++: the rate people would give."))
    flips = []
    for lv in r.get("levers") or []:
        crits = ((lv.get("details") or {}).get("judge") or {}).get("criteria") or {}
        for crit, c in crits.items():
            if c.get("samples"):
                flips.append([lv["name"], crit, str(c["samples"]), f"{c.get('flips')} ({_f(c.get('flip_rate'))})",
                              ", ".join(c.get("flip_ids") or []) or "-", str(c.get("ties"))])
    if flips:
        blocks.append(Table(["row", "criterion", "samples", "items that flip", "ids", "ties (unscored)"], flips,
                            caption="Each output graded several times by the judge: items whose grade changes."))
    length_rows, warnings = [], []
    for crit, probe in bias.items():
        if not probe.get("cuts"):
            continue
        for name, e in (probe.get("levers") or {}).items():
            length_rows.append([crit, name, _f(e.get("mean_words"), 0),
                                *[_f(x) for x in e.get("by_tercile") or [None] * 3],
                                "-" if e.get("r") is None else f"{e['r']:+.2f} (p={e['p']:.2g})"])
        warnings += probe.get("flags") or []
    if length_rows:
        blocks.append(Table(["criterion", "row", "mean words", "short", "middle", "long", "length r"], length_rows,
                            caption="The judge's pass rate by output-length tercile (cut points pooled over "
                            "rows) and the point-biserial correlation of length with the grade."))
    blocks += [Paragraph(w, "warn") for w in warnings]
    return Section("judge", "Judge (rubric criteria)", blocks) if blocks else None
