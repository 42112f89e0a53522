"""report.md: the same sections, text and tables as report.html, for a ticket or a pull request.

Charts are links to the SVG files written beside it. Every value from data or a model is
escaped: markdown punctuation gets a backslash, `<`, `>` and `&` become entities (GitHub and
most renderers pass raw HTML through, so `<script>` must not reach them as a tag), and a table
cell keeps to one line with its pipes escaped.
"""

from __future__ import annotations

import re

from advisor.report.blocks import Bullets, Chart, Document, Heading, Paragraph, Table

# Characters with an inline meaning in CommonMark/GFM anywhere in a line (an underscore only at a
# word's edge: GFM never reads intraword underscores as emphasis, so `macro_f1` stays readable).
_INLINE = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# At the start of a line: headings, lists, quotes (already an entity), thematic breaks, numbered lists.
_LINE_START = re.compile(r"^(\s*)([#+-](?=\s|$)|\d+[.)](?=\s|$)|[=-]+(?=\s*$))", re.M)


def _line_start(m: re.Match[str]) -> str:
    mark = m.group(2)
    return m.group(1) + (mark[:-1] + "\\" + mark[-1] if mark[0].isdigit() else "\\" + mark)


def escape(text: str, *, block: bool = True) -> str:
    """Plain text -> markdown that shows exactly that text. `block=False` for text inside a line
    (a table cell), where line-start markers such as "1." or "-" mean nothing."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(_line_start, text) if block else text


def cell(text: str) -> str:
    """Plain text -> one markdown table cell: escaped, line breaks shown as ⏎ (a row is one line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return escape(text, block=False).replace("\n", " ⏎ ") or " "


def _table(t: Table) -> list[str]:
    cols = [cell(c) for c in t.columns]
    align = ["---:" if t.numeric and i < len(t.numeric) and t.numeric[i] else "---" for i in range(len(cols))]
    out = ["| " + " | ".join(cols) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        out += ["", f"*{escape(t.caption)}*"]
    return out


def render_markdown(doc: Document, chart_links: dict[str, str]) -> str:
    """The report as markdown; `chart_links` maps a chart name to its SVG file's relative path."""
    lines = [f"# {escape(doc.title)}", "", f"**{escape(doc.subtitle)}**", ""]
    for section in doc.sections:
        lines += [f"## {escape(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                text = escape(block.text)
                if block.style in {"verdict", "verdict-none"}:
                    text = f"**{text}**"
                elif block.style == "warn":
                    text = f"> **Note:** {text}"
                elif block.style == "note":
                    text = f"*{text}*"
                lines += [text.replace("\n", "  \n"), ""]
            elif isinstance(block, Heading):
                lines += [f"### {escape(block.text)}", ""]
            elif isinstance(block, Bullets):
                lines += [f"- {escape(item)}".replace("\n", " ") for item in block.items] + [""]
            elif isinstance(block, Table):
                lines += _table(block) + [""]
            elif isinstance(block, Chart):
                lines += [f"![{escape(block.title)}]({chart_links[block.name]})", "", f"*{escape(block.caption)}*", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
