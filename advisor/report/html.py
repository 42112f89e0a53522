"""report.html: one self-contained page (inline CSS, inline SVG charts, no script, no link out).

Every value is escaped by Jinja2's autoescape; the only markup not escaped is the charts' SVG,
which matplotlib wrote with its text escaped and `charts.check_svg` has checked holds nothing
active.
"""

from __future__ import annotations

from importlib.resources import files

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from advisor.report.blocks import Document
from advisor.report.charts import check_svg, strip_prolog

_TEMPLATES = files("advisor.report") / "templates"


def render_html(doc: Document) -> str:
    """The page as text (UTF-8 when written). Raises ValueError if a chart holds active SVG content."""
    env = Environment(loader=FileSystemLoader(str(_TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      keep_trailing_newline=True)
    charts = {c.name: Markup(strip_prolog(check_svg(c.svg))) for c in doc.charts()}
    css = Markup((_TEMPLATES / "report.css").read_text(encoding="utf-8"))
    return env.get_template("report.html.j2").render(doc=doc, charts=charts, css=css)
