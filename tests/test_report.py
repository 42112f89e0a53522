"""report.html and report.md: contents in order, escaping, determinism, and a real headless Chromium.

Run folders come from tests/report_fixtures.py (shaped like each sample task's results, plus a
planted hostile run); one slow test renders the report of a real `advise run` on the real model.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.report.charts import CostLine, QualityPoint, check_svg, crossing, pareto_frontier
from advisor.report.document import load_run, sample_failures
from advisor.report.markdown import cell, escape
from advisor.report.render import write_reports
from tests.report_fixtures import BUILDERS, EMOJI, RTL

SECTION_ORDER = ["task", "verdict", "scorecard", "cost-quality", "volume", "levers", "failures", "data", "provenance"]


class PageParser(HTMLParser):
    """Every start tag with its attributes, and the text of <title>, as the browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ends: list[str] = []
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self.ends.append(tag)
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse(html: str) -> PageParser:
    p = PageParser()
    p.feed(html)
    p.close()
    return p


@pytest.fixture
def run_dir(tmp_path, request) -> Path:
    return BUILDERS[request.param](tmp_path / request.param)


def _render(folder: Path) -> tuple[str, str]:
    paths = write_reports(folder)
    assert [p.name for p in paths] == ["report.html", "report.md"]
    return paths[0].read_text(encoding="utf-8"), paths[1].read_text(encoding="utf-8")


def _assert_no_outside_reference(html: str, planted: frozenset[str] = frozenset()) -> None:
    """No attribute, style or CSS url names anything outside the page; the only URL in it is the SVG
    namespace, besides `planted` ones that the data itself holds as text."""
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag not in {"script", "img", "iframe", "object", "embed", "link", "image", "foreignobject"}, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name == "xmlns":
                assert value == "http://www.w3.org/2000/svg"
            elif name in {"href", "xlink:href", "src", "action", "srcset"}:
                assert (value or "").startswith("#"), (tag, name, value)
    assert not re.search(r"url\((?!#)|@import", html, re.I)  # clip-path="url(#id)" stays inside
    urls = re.findall(r"\b(?:https?:)?//[\w.-]+", html)
    assert set(urls) <= {"http://www.w3.org", *planted}, set(urls)


@pytest.mark.parametrize("run_dir", ["trec", "countries", "addresses"], indirect=True)
def test_each_sample_shape_renders_every_section_in_order(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    html, md = _render(run_dir)
    page = parse(html)
    ids = [a["id"] for t, a in page.tags if t == "section"]
    assert ids == SECTION_ORDER
    assert page.ends.count("table") == sum(1 for t, _ in page.tags if t == "table")  # balanced
    _assert_no_outside_reference(html)
    rec = results["recommendation"]["lever"]
    headline = f"Recommendation: {rec}" if rec else "Recommendation: none of the levers meets the target"
    assert headline in html and headline in md
    assert results["target"]["need"] is None or results["target"]["need"] in html
    # Scorecard: every lever's interval and prices, in both formats.
    metric = results["target"]["metric"]
    for lv in results["levers"]:
        m = lv["metrics"][metric]
        row = f"{m['value']:.3f} ({m['ci_low']:.3f}–{m['ci_high']:.3f})"
        assert row in html and row in md
        first_year = lv["cost"]["first_year_usd"]
        assert f"{first_year:,.2f}" in html if first_year is not None else "–" in html
    # Two charts inline in the page and as files beside report.md, linked from it.
    assert html.count("<svg") == 2
    for name in ("cost_quality", "volume"):
        svg = (run_dir / f"{name}.svg").read_text(encoding="utf-8")
        ET.fromstring(svg.encode())  # well-formed XML
        assert f"]({name}.svg)" in md
    # The markdown carries the same tables: every scorecard cost row appears as a table row.
    for lv in results["levers"]:
        per_1k = f"{lv['cost']['per_1k_queries_usd']:.4f}" if lv["cost"]["per_1k_queries_usd"] is not None else "–"
        assert re.search(rf"^\| {re.escape(escape(lv['name']))} \| {re.escape(per_1k)} \|", md, re.M), lv["name"]
    # Failures: at most 10 a lever, with the count the store holds.
    run = load_run(run_dir)
    for lv in results["levers"]:
        items = run.items[lv["name"]]
        assert f"{len(items.failures)} of {items.n_items} items scored below 1 on {items.metric}" in md
    assert len(re.findall(r'<tr class="failure">', html)) <= 10 * len(results["levers"])


@pytest.mark.parametrize("run_dir", ["trec"], indirect=True)
def test_the_agreed_keys_of_the_other_branches_render_when_present(run_dir):
    html, md = _render(run_dir)
    for text in ("? undecided (about 420 more items)", "✓ meets", "no better than the baseline",
                 "baseline: majority-label", "Paired comparisons on the same eval items",
                 "Decision rule: lower_bound", "lora is not shown non-inferior to lora-rag within 0.02.",
                 "Break-even volumes (the verdict", "2,500,000", "Data audit", "2 eval questions have a near-copy",
                 "Prompt search: 12 candidates scored on 60 dev items", "labels-explained",
                 "3 item(s) were truncated", "log-likelihood (option_loglik)", "option ranking", "family fine-tuning",
                 "t0117, t2203", "Not drawn, price unknown: prompt@hosted", "model openai:gpt-4o-mini",
                 "2 answer(s) could not be mapped onto a label", "json_schema_enum"):
        assert text in html, text
        assert escape(text) in md or text.replace("(", "").replace(")", "") in md or escape(text) in md, text


@pytest.mark.parametrize("run_dir", ["countries", "addresses"], indirect=True)
def test_todays_results_render_without_the_new_keys(run_dir):
    html, md = _render(run_dir)
    for absent in ("Paired comparisons", "Data audit", "baseline:", "Prompt search"):
        assert absent not in html and absent not in md
    # Runs from before the rule was recorded were judged by the point estimate, and the report says so.
    assert "Decision rule: point" in html
    assert "The verdict lists no break-even volume" in html  # a reader never computes one itself
    if "countries" in run_dir.name:
        assert "retrieval_recall@4" in html and "retrieval_mrr" in html
    else:
        assert "Learning curve (target 0.90)" in html and "What the curve says: the fitted curve levels off" in html
        assert "StreetName" in html  # per-field F1
        assert "The task file gives no reason for the target" in html


@pytest.mark.parametrize("run_dir", ["trec"], indirect=True)
def test_the_same_stored_run_renders_byte_identical_files(run_dir, tmp_path):
    write_reports(run_dir)
    first = {p.name: p.read_bytes() for p in run_dir.glob("*") if p.suffix in {".html", ".md", ".svg"}}
    assert sorted(first) == ["cost_quality.svg", "report.html", "report.md", "volume.svg"]
    # A second render in a fresh process (`advise report`), into another folder.
    other = tmp_path / "again"
    done = subprocess.run([sys.executable, "-c", "from advisor.cli import main; main()", "report", str(run_dir),
                           "--out", str(other)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(other / "report.html"), str(other / "report.md")]
    assert {n: (other / n).read_bytes() for n in first} == first


@pytest.mark.parametrize("run_dir", ["hostile"], indirect=True)
def test_a_hostile_run_shows_as_text_and_runs_nothing(run_dir):
    html, md = _render(run_dir)
    page = parse(html)
    _assert_no_outside_reference(html, frozenset({"http://evil.test"}))  # the planted reason's text
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert page.title.startswith("evil <script>document.title='PWNED'</script>")  # shown as text, not run
    assert html.count("&lt;script&gt;") >= 5 and "onerror=&#34;" in html
    assert page.ends.count("table") == sum(1 for t, _ in page.tags if t == "table")
    assert page.ends.count("section") == len(SECTION_ORDER)
    assert RTL in html and EMOJI in html and RTL in md and EMOJI in md
    # The failures tables hold the planted inputs and outputs, as text.
    failures = html[html.index('<section id="failures">'):html.index('<section id="data">')]
    shown = sum(min(10, len(items.failures)) for items in load_run(run_dir).items.values())
    assert shown > 20 and failures.count('<tr class="failure">') == shown
    assert failures.count("&lt;/table&gt;") == shown and failures.count("&lt;script&gt;document.title") >= 2 * shown
    assert "sk-SECRET" not in html and "sk-SECRET" not in md and "api_key=***" in html
    for name in ("cost_quality", "volume"):
        svg = (run_dir / f"{name}.svg").read_text(encoding="utf-8")
        check_svg(svg)
        assert "<script" not in svg and "&lt;script&gt;" in svg
    # Markdown: no raw tag reaches a renderer that passes HTML through; every table row has as many
    # cell separators as its header (pipes from data are escaped).
    assert not re.search(r"<(script|img|/table|/section)", md, re.I)
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("| "):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    for table in filter(None, tables):
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(counts) == 1, table


def test_check_svg_refuses_active_content():
    ok = '<svg xmlns="http://www.w3.org/2000/svg"><text>&lt;script&gt;</text><use href="#a"/></svg>'
    assert check_svg(ok) == ok
    for bad in ('<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg"><rect onload="x()"/></svg>',
                '<svg xmlns="http://www.w3.org/2000/svg" xmlns:l="http://www.w3.org/1999/xlink">'
                '<use l:href="http://evil.test/a.svg#x"/></svg>'):
        with pytest.raises(ValueError):
            check_svg(bad)


@pytest.mark.parametrize("text, expected", [
    ("a|b", r"a\|b"),
    ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
    ("**bold** _it_ `code` [l](u)", r"\*\*bold\*\* \_it\_ \`code\` \[l\](u)"),
    ("macro_f1 & retrieval_recall@4", "macro_f1 &amp; retrieval_recall@4"),
    ("# heading", r"\# heading"),
    ("- item", r"\- item"),
    ("1. first", r"1\. first"),
    ("0.830 (0.79–0.87)", "0.830 (0.79–0.87)"),
    ("---", r"\---"),
    ("-1 is not a list", "-1 is not a list"),
])
def test_markdown_escape(text, expected):
    assert escape(text) == expected


def test_a_markdown_cell_is_one_line():
    assert cell("two\nlines | pipe") == r"two ⏎ lines \| pipe"
    assert cell("") == " "


def test_failures_are_sampled_deterministically_and_spread():
    rows = [{"position": i, "example_id": f"e{i}"} for i in range(50)]
    chosen = sample_failures("task", "prompt", rows)
    assert len(chosen) == 10
    assert [r["position"] for r in chosen] == sorted(r["position"] for r in chosen)  # eval order
    assert sample_failures("task", "prompt", list(reversed(rows))) == chosen  # order of input does not matter
    assert max(r["position"] for r in chosen) >= 25  # not just the first ten
    assert sample_failures("task", "prompt", rows[:4]) == rows[:4]


def test_pareto_frontier_and_break_even_by_hand():
    pts = [QualityPoint("cheap-bad", 1.0, 0.3, 0.2, 0.4, "fails"),
           QualityPoint("dear-bad", 50.0, 0.25, 0.2, 0.3, "fails"),  # dominated by cheap-bad
           QualityPoint("mid", 10.0, 0.7, 0.6, 0.8, "fails"),
           QualityPoint("dear-good", 100.0, 0.9, 0.85, 0.95, "meets"),
           QualityPoint("unpriced", None, 0.99, 0.98, 1.0, "meets")]
    assert pareto_frontier(pts) == ["cheap-bad", "mid", "dear-good"]
    # $40/month fixed + $0.001/query against $0 fixed + $0.002/query: equal at 40,000 queries/month.
    assert crossing(CostLine("lora", 40.0, 0.001), CostLine("prompt", 0.0, 0.002)) == pytest.approx(40_000)
    assert crossing(CostLine("a", 1.0, 0.001), CostLine("b", 2.0, 0.001)) is None
    assert crossing(CostLine("a", 1.0, 0.002), CostLine("b", 2.0, 0.003)) is None  # a is cheaper everywhere


def test_report_command_formats_and_errors(tmp_path):
    folder = BUILDERS["addresses"](tmp_path / "run")
    r = CliRunner().invoke(main, ["report", str(folder), "--format", "html", "--out", str(tmp_path / "a.html")])
    assert r.exit_code == 0 and r.output.strip() == str(tmp_path / "a.html")
    assert (tmp_path / "cost_quality.svg").is_file() and not (folder / "report.html").exists()
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "b.md")])
    assert r.exit_code == 2 and "give a folder for --format both" in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no results.json" in r.output and "Traceback" not in r.output
    # A run folder without a store still renders, and says why no failures are listed.
    (folder / "advise.sqlite").unlink()
    r = CliRunner().invoke(main, ["report", str(folder), "--format", "md"])
    assert r.exit_code == 0
    assert "this run folder has no advise.sqlite" in (folder / "report.md").read_text()


def _chromium(*args: str) -> subprocess.CompletedProcess:
    # No network: no proxy, every host name resolves to nothing; a fresh profile; no sandbox (root in CI).
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                           "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--disable-extensions",
                           "--hide-scrollbars", "--window-size=1000,3000", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("run_dir", ["trec", "hostile"], indirect=True)
def test_report_html_in_headless_chromium(run_dir, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("headless Chromium is not installed (`make chromium` installs the Debian package as root)")
    html, _ = _render(run_dir)
    url = (run_dir / "report.html").resolve().as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = parse(dom.stdout)
    # The title is what the page says; a planted script would have set it to PWNED.
    assert page.title == parse(html).title and "PWNED" not in page.title.replace("document.title='PWNED'", "")
    assert page.title.endswith(": which lever to use")
    results = json.loads((run_dir / "results.json").read_text())
    assert f"Recommendation: {results['recommendation']['lever']}" in dom.stdout.replace("&lt;", "<").replace(
        "&gt;", ">").replace("&quot;", '"')
    figures = [a.get("id") for t, a in page.tags if t == "figure"]
    assert figures == ["chart-cost_quality", "chart-volume"]
    assert sum(1 for t, _ in page.tags if t == "svg") == 2
    assert sum(1 for t, _ in page.tags if t == "path") > 20  # the charts' lines and markers were parsed
    assert not any(t in {"script", "img"} for t, _ in page.tags)
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image  # pillow comes with matplotlib

    image = Image.open(shot).convert("L")
    assert image.size == (1000, 3000)
    low, high = image.getextrema()
    assert high - low > 200  # ink on paper, not a blank page
    # It prints on A4 (the page's @page rule), every page 595 x 842 points.
    pdf = tmp_path / "report.pdf"
    done = _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf.read_bytes())
    assert boxes and all(round(float(w)) == 595 and round(float(h)) == 842 for w, h in boxes)
    keep = Path(__file__).resolve().parent.parent / "runs" / "report-screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / f"{run_dir.name}.png")  # for a person to look at (runs/ is not committed)


@pytest.mark.slow
def test_advise_run_writes_the_report_of_real_answers(trec_small, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", str(trec_small), "--out", str(out), "--lever", "prompt", "--limit", "10",
                                  "--latency-probe", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"Report: {out / 'report.html'} and {out / 'report.md'}" in r.output
    results = json.loads((out / "results.json").read_text())
    wrong = round(10 * (1 - results["levers"][0]["metrics"]["accuracy"]["value"]))
    md = (out / "report.md").read_text()
    assert f"{wrong} of 10 items scored below 1 on accuracy; {min(wrong, 10)} shown." in md
    run = load_run(out)
    golds = [json.loads(line)["output"] for line in (trec_small.parent / "data" / "eval.jsonl").read_text()
             .splitlines()[:10]]
    for f in run.items["prompt"].failures:
        assert f["gold"] == golds[f["position"]] and f["output"] != f["gold"]
    # Every dollar figure's stated inputs are in the report: task.yaml costs and the compute calibration.
    assert results["costs"]["cpu_hour_usd"] == 0.10
    cal = results["levers"][0]["cost"]["calibration"]
    assert "| cpu_hour_usd | 0.1 |" in md or "| cpu_hour_usd | 0.10 |" in md
    assert f"calibrated {cal['calibrated']} on this machine" in md
