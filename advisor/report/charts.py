"""The report's two charts, drawn by matplotlib as SVG text: cost against quality, cost against volume.

Both are pure functions of plain data (no results.json parsing here) and deterministic: the
same input gives byte-identical SVG (fixed `svg.hashsalt`, no date in the metadata). Text is
written as SVG <text> (`svg.fonttype: none`), which matplotlib escapes, so a lever named
`<script>` shows as those characters; `check_svg` refuses anything active all the same.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: the report renders on a server or in CI

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

# Lines differ by style as well as colour, so the charts read on a black-and-white printout.
_STYLES = ["-", "--", "-.", ":"]
_STATE_COLOURS = {"meets": "#1a7f37", "fails": "#cf222e", "undecided": "#bf8700"}


def _rc(salt: str) -> dict[str, Any]:
    return {
        "svg.hashsalt": salt,  # clip-path ids from a fixed salt: same run, same bytes
        "svg.fonttype": "none",  # text stays text (selectable, escaped), not glyph outlines
        "text.parse_math": False,  # a "$" in a lever name or label is a dollar, not mathtext
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        # Text is drawn by the reader's browser (fonttype none): a glyph missing from matplotlib's own
        # font (an emoji in a lever name) only affects its layout estimate, so its warning is noise.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        # Date None: no render timestamp; Creator fixed: the file does not change with matplotlib's version.
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "advise"})
    plt.close(fig)
    return check_svg(buf.getvalue())


def check_svg(svg: str) -> str:
    """`svg` unchanged when it holds nothing active (no script, event handler, foreign object or
    outside link); ValueError otherwise. The report inlines charts into its HTML page."""
    root = ET.fromstring(svg.encode("utf-8"))
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1].lower()
        if tag in {"script", "foreignobject", "iframe", "a"}:
            raise ValueError(f"chart SVG holds a <{tag}> element")
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise ValueError(f"chart SVG holds an event handler attribute {local}")
            if local == "href" and not value.startswith("#"):
                raise ValueError("chart SVG links outside itself")
    return svg


def strip_prolog(svg: str) -> str:
    """The `<svg ...>...</svg>` element for inlining into HTML: without the XML declaration, DOCTYPE,
    RDF metadata and the xlink namespace declaration (the HTML parser knows `xlink:href` itself), so
    the page names no URL at all except the SVG namespace."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    return svg.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1)


def _dollars(x: float, _pos: Any = None) -> str:
    if x >= 1:
        return f"${x:,.0f}"
    return f"${x:.{max(0, -math.floor(math.log10(x)))}f}" if x > 0 else "$0"


def _count(x: float, _pos: Any = None) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:g}{unit}"
    return f"{x:g}"


def _log_axis(axis: Any, formatter: Any, lo: float, hi: float) -> None:
    # Our own labels: matplotlib's default log labels are mathtext, which parse_math=False turns off.
    # A range under two decades (levers of similar cost) gets 1-2-5 ticks, or it would show one label.
    if hi / lo < 100:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(formatter))
    axis.set_minor_formatter(NullFormatter())


def _legend(ax: Any) -> None:
    """The legend beside the axes, not on them (a legend inside could hide a lever's point); none when
    nothing is labelled (every lever's price unknown: no line to name), where matplotlib would warn."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


@dataclass(frozen=True)
class QualityPoint:
    """One lever on the cost–quality chart. `monthly_usd` None: price unknown, not plotted."""

    name: str
    monthly_usd: float | None
    value: float
    ci_low: float
    ci_high: float
    state: str  # meets | fails | undecided


def pareto_frontier(points: list[QualityPoint]) -> list[str]:
    """Names of the levers no other lever beats on both cost and quality, cheapest first.

    A lever is dominated when another costs no more and scores at least as high, and is strictly
    better on one of the two. Levers without a price are left out (they cannot be compared).
    """
    priced = [p for p in points if p.monthly_usd is not None]
    out = []
    for p in priced:
        dominated = any(
            q is not p and q.monthly_usd <= p.monthly_usd and q.value >= p.value  # type: ignore[operator]
            and (q.monthly_usd < p.monthly_usd or q.value > p.value)  # type: ignore[operator]
            for q in priced
        )
        if not dominated:
            out.append(p)
    return [p.name for p in sorted(out, key=lambda p: (p.monthly_usd, -p.value, p.name))]


def cost_quality_svg(points: list[QualityPoint], *, metric: str, threshold: float, volume: int,
                     baseline: tuple[str, float] | None = None) -> str:
    """SVG text: x monthly cost at `volume` queries/month (log scale), y `metric` with interval
    whiskers, the target line, the Pareto frontier, and the trivial baseline's score when given.

    Levers at $0 a month sit at the axis' low end (a log axis has no zero); the caption says so.
    """
    priced = [p for p in points if p.monthly_usd is not None]
    positive = [p.monthly_usd for p in priced if p.monthly_usd and p.monthly_usd > 0]
    floor = min(positive) / 10 if positive else 0.01
    with plt.rc_context(_rc("advise-cost-quality")):
        fig, ax = plt.subplots(figsize=(6.2, 3.8))
        ax.set_xscale("log")
        xs = {p.name: max(p.monthly_usd or 0.0, floor) for p in priced}
        frontier = pareto_frontier(points)
        if len(frontier) > 1:
            ax.plot([xs[n] for n in frontier], [next(p.value for p in priced if p.name == n) for n in frontier],
                    "-", color="#8c959f", linewidth=1.2, zorder=1, label="Pareto frontier")
        for i, p in enumerate(sorted(priced, key=lambda p: (xs[p.name], p.name))):
            colour = _STATE_COLOURS.get(p.state, "#57606a")
            ax.errorbar([xs[p.name]], [p.value], yerr=[[p.value - p.ci_low], [p.ci_high - p.value]], fmt="o",
                        color=colour, ecolor=colour, capsize=3, markersize=6, zorder=3,
                        markerfacecolor=colour if p.name in frontier else "white")
            # Alternate label sides so neighbours at similar cost do not print over each other.
            ax.annotate(p.name, (xs[p.name], p.value), xytext=(7, 6 if i % 2 == 0 else -12),
                        textcoords="offset points", fontsize=8)
        ax.axhline(threshold, linestyle="--", color="#24292f", linewidth=1, zorder=2,
                   label=f"target {metric} {threshold:.2f}")
        if baseline is not None:
            ax.axhline(baseline[1], linestyle=":", color="#8250df", linewidth=1, zorder=2,
                       label=f"baseline ({baseline[0]}) {baseline[1]:.2f}")
        xs_all = list(xs.values()) or [floor]
        x_lo, x_hi = min(xs_all) / 3, max(xs_all) * 3
        ax.set_xlim(x_lo, x_hi)
        _log_axis(ax.xaxis, _dollars, x_lo, x_hi)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel(f"cost per month at {volume:,} queries/month (USD, log scale)")
        ax.set_ylabel(f"{metric} (whiskers: interval)")
        ax.grid(True, which="major", color="#eaeef2", linewidth=0.6)
        _legend(ax)
        return _svg(fig)


@dataclass(frozen=True)
class CostLine:
    """A lever's cost as a function of volume: `fixed_usd_per_month + per_query_usd * queries`."""

    name: str
    fixed_usd_per_month: float  # setup spread over the first year, plus upkeep
    per_query_usd: float

    def at(self, queries_per_month: float) -> float:
        return self.fixed_usd_per_month + self.per_query_usd * queries_per_month


def crossing(a: CostLine, b: CostLine) -> float | None:
    """Queries per month at which the two lines cross, or None when they never do at a positive volume."""
    slope = a.per_query_usd - b.per_query_usd
    if slope == 0:
        return None
    q = (b.fixed_usd_per_month - a.fixed_usd_per_month) / slope
    return q if q > 0 else None


def volume_range(volume: int, marks: list[float]) -> tuple[float, float]:
    """The x range: three decades either side of the stated volume, widened to show every mark."""
    lo, hi = max(volume / 1000, 10.0), volume * 1000.0
    for q in marks:
        lo, hi = min(lo, q / 3), max(hi, q * 3)
    return lo, hi


def volume_svg(lines: list[CostLine], *, volume: int, marks: list[tuple[float, str]]) -> str:
    """SVG text: cost per month (first year, setup spread over it) against queries per month, one
    line per lever, log–log; the stated volume as a vertical line; `marks` are (queries, lever)
    break-even points drawn on that lever's line."""
    lo, hi = volume_range(volume, [q for q, _ in marks])
    grid = [10 ** (math.log10(lo) + i * (math.log10(hi) - math.log10(lo)) / 200) for i in range(201)]
    by_name = {ln.name: ln for ln in lines}
    with plt.rc_context(_rc("advise-volume")):
        fig, ax = plt.subplots(figsize=(6.2, 3.8))
        ax.set_xscale("log")
        ax.set_yscale("log")
        cmap = plt.get_cmap("tab10")
        ys_all: list[float] = []
        for i, ln in enumerate(lines):
            ys = [max(ln.at(q), 1e-9) for q in grid]
            ys_all += ys
            ax.plot(grid, ys, _STYLES[i % len(_STYLES)], color=cmap(i % 10), linewidth=1.5, label=ln.name)
        for q, name in marks:
            if name in by_name:
                ax.plot([q], [max(by_name[name].at(q), 1e-9)], "o", color="#24292f", markersize=5, zorder=4)
                ax.annotate(f"{q:,.0f}", (q, by_name[name].at(q)), xytext=(4, -11), textcoords="offset points",
                            fontsize=7)
        ax.axvline(volume, linestyle=":", color="#57606a", linewidth=1)
        ax.annotate(f"stated volume {volume:,}", (volume, 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=7, color="#57606a")
        ax.set_xlim(lo, hi)
        _log_axis(ax.xaxis, _count, lo, hi)
        if ys_all:
            ax.set_ylim(min(ys_all) / 2, max(ys_all) * 2)
            _log_axis(ax.yaxis, _dollars, min(ys_all) / 2, max(ys_all) * 2)
        ax.set_xlabel("queries per month (log scale)")
        ax.set_ylabel("cost per month, first year (USD, log scale)")
        ax.grid(True, which="major", color="#eaeef2", linewidth=0.6)
        _legend(ax)
        return _svg(fig)
