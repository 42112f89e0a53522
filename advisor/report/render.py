"""Write a stored run's reports: report.html, report.md and the chart SVGs beside them.

    paths = write_reports(Path("runs/trec-question-type"))   # [.../report.html, .../report.md]

Rendering reads only the run folder (results.json, advise.sqlite), never loads a model, and is
deterministic: the same stored run gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

from advisor.errors import InputError
from advisor.report.document import build_document, load_run
from advisor.report.html import render_html
from advisor.report.markdown import render_markdown

FORMATS = ("html", "md")
_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md"}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="\n")
        tmp.replace(path)  # a reader never sees half a report
    except OSError:  # a full disk: no half-written .tmp is left behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def report_paths(run_dir: Path, formats: tuple[str, ...], out: Path | None) -> dict[str, Path]:
    """Where each format goes: `out` is a folder, or with one format a file ending in .html/.md;
    by default the run folder. Raises InputError for a file name that does not fit the format."""
    if out is None:
        return {f: run_dir / f"report.{f}" for f in formats}
    named = _SUFFIXES.get(out.suffix.lower())
    if named:
        if formats != (named,):
            raise InputError(f"'{out}' names one {named} file; give a folder for --format "
                             f"{'both' if len(formats) > 1 else formats[0]}", field="--out")
        return {named: out}
    return {f: out / f"report.{f}" for f in formats}


def write_reports(run_dir: Path, formats: tuple[str, ...] = FORMATS, out: Path | None = None) -> list[Path]:
    """Render `run_dir`'s stored run; returns the report paths written (charts go beside them).

    Raises InputError (exit code 2) when the folder holds no readable results.json; OSError as the
    filesystem does (a full disk: ENOSPC), a report already there then left as it was.
    """
    run = load_run(run_dir)
    doc = build_document(run)
    written = []
    for fmt, path in report_paths(run.run_dir, formats, out).items():
        links = {c.name: _write(path.parent / f"{c.name}.svg", c.svg).name for c in doc.charts()}
        written.append(_write(path, render_html(doc) if fmt == "html" else render_markdown(doc, links)))
    return written
