"""Report rendering time and size for the largest fixture run, against the parts it is made of.

    python bench/bench_report.py [--items 300] [--repeat 3]

Builds a stored run shaped like the TREC sample (six levers, `--items` eval items each, every
agreed results.json key; tests/report_fixtures.py), then renders it. Prints the median wall time
of a whole render (load the run, build the document, two charts, report.html, report.md), the
share of it spent drawing the charts and the bytes written, so a slowdown shows as a ratio
measured in this same process rather than against a fixed goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/report_fixtures.py

from advisor.report import sections  # noqa: E402
from advisor.report.document import load_run  # noqa: E402
from advisor.report.render import write_reports  # noqa: E402
from tests.report_fixtures import trec  # noqa: E402


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    folder = trec(Path(tempfile.mkdtemp(prefix="bench-report-")) / "trec", n=args.items)
    write_reports(folder)  # warm: imports, font cache
    cpu0 = time.process_time()
    whole = _median(lambda: write_reports(folder), args.repeat)
    cpu = (time.process_time() - cpu0) / args.repeat  # this process's CPU: steady on a shared machine
    run = load_run(folder)
    load = _median(lambda: load_run(folder), args.repeat)
    charts = _median(lambda: (sections.cost_quality_section(run.results), sections.volume_section(run.results)),
                     args.repeat)
    sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("*")) if p.suffix in {".html", ".md", ".svg"}}
    n_levers = len(run.results["levers"])
    print(f"run: {n_levers} levers x {args.items} eval items ({folder})")
    print(f"render, whole: {whole:.2f} s wall (median of {args.repeat}), {cpu:.2f} s CPU = {cpu / whole:.2f} of wall")
    print(f"  load run (results.json + store): {load:.3f} s = {load / whole:.2f} of the whole")
    print(f"  two charts (matplotlib SVG):     {charts:.3f} s = {charts / whole:.2f} of the whole")
    for name, size in sizes.items():
        print(f"  {name}: {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
