"""`advise adapters` as a table that fits the terminal: the columns that matter first.

Rich shrinks every column of a table that is too wide until each one reads `…`. Instead,
columns are added in order of importance while they fit at their full width; the rest stay
in `advise adapters --json`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

STATUS = {"ready": "ready", "training": "training now", "partial": "unfinished"}


def _metrics(r: dict[str, Any]) -> str:
    shown = [f"{k} {v:.3f}" for k, v in (r.get("metrics") or {}).items() if isinstance(v, int | float)]
    return "\n".join(shown) or "–"  # one per line: a narrow column


def _loss(r: dict[str, Any]) -> str:
    v = r.get("best_val_loss")
    return f"{v:.3f}" if isinstance(v, int | float) else "–"


def _text(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: "–" if r.get(key) in (None, "") else str(r[key])


# (header, cell, right-aligned), most important first.
COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str], bool]] = [
    ("version", _text("version"), False),
    ("status", lambda r: STATUS.get(str(r.get("status")), str(r.get("status"))), False),
    ("metrics", _metrics, False),
    ("task", _text("task"), False),
    ("lever", _text("lever"), False),
    ("steps", _text("steps"), True),
    ("val loss", _loss, True),
    ("created", lambda r: str(r.get("created") or "")[:16].replace("T", " ") or "–", False),
    ("size", lambda r: f"{(r.get('size_bytes') or 0) / 1e6:.1f} MB", True),
    ("n_train", _text("n_train"), True),
    ("data", _text("data_hash"), False),
]


def _table(rows: list[dict[str, Any]], cells: list[list[str]], chosen: list[int], title: str) -> Table:
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for i in chosen:
        header, _, right = COLUMNS[i]
        table.add_column(header, justify="right" if right else "left", no_wrap=True)
    for j, r in enumerate(rows):
        style = "" if r.get("status") == "ready" else "yellow"
        table.add_row(*[Text(cells[i][j], style=style) for i in chosen])
    return table


def adapters_table(rows: list[dict[str, Any]], width: int, title: str = "") -> Table:
    """A table of `rows` (from `list_adapters`) no wider than `width` characters.

    Columns are kept, in the order of COLUMNS, while their full width fits (measured by rich);
    the version is always shown. An unfinished adapter reads "unfinished" or "training now".
    """
    console = Console(width=100_000)  # measures each trial at its natural width
    cells = [[fn(r) for r in rows] for _, fn, _ in COLUMNS]
    chosen: list[int] = []
    for i in range(len(COLUMNS)):
        trial = sorted(chosen + [i])
        if chosen and Measurement.get(console, console.options, _table(rows, cells, trial, "")).maximum > width:
            continue  # a later, narrower column may still fit
        chosen = trial
    table = _table(rows, cells, chosen, title)
    hidden = [COLUMNS[i][0] for i in range(len(COLUMNS)) if i not in chosen]
    if hidden:
        table.caption = f"not shown at this width: {', '.join(hidden)} (see --json)"
        table.caption_justify = "left"
    return table
