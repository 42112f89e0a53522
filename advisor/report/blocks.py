"""What a report is made of: sections of paragraphs, bullets, tables, charts and sub-headings.

`advisor.report.document.build_document` assembles them from a stored run; report.html
(`advisor.report.html`) and report.md (`advisor.report.markdown`) print the same blocks, so both
carry the same text and numbers. Every string is plain text: each renderer escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    text: str
    style: str = "p"  # p | note | warn | lead (a CSS class from this fixed set, never from data)
    kind: str = "paragraph"


@dataclass(frozen=True)
class Bullets:
    items: list[str]
    kind: str = "bullets"


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str | None = None
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns
    row_styles: list[str] = field(default_factory=list)  # per row: "" | meets | fails | undecided | baseline
    kind: str = "table"


@dataclass(frozen=True)
class Chart:
    name: str  # file stem: <name>.svg beside the report
    title: str
    svg: str  # the whole SVG document as matplotlib wrote it (checked by charts.check_svg)
    caption: str
    kind: str = "chart"


@dataclass(frozen=True)
class Heading:
    text: str
    kind: str = "heading"  # a sub-heading (h3) inside a section


Block = Paragraph | Bullets | Table | Chart | Heading


@dataclass
class Section:
    id: str  # anchor, from a fixed set
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def charts(self) -> list[Chart]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Chart)]
