"""Reading the user's text files one way: UTF-8 with or without a byte-order mark.

Every text file advise reads (task.yaml, JSONL and CSV data, knowledge documents) comes through
here, so a file saved by Excel ("CSV UTF-8" writes a byte-order mark) or by Notepad loads exactly
like the same file without the mark, and a file in another encoding is one clear error naming the
file, the line and the byte instead of a traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advisor.errors import InputError

# "utf-8-sig" is Python's codec for UTF-8 that drops a leading byte-order mark and is plain UTF-8
# otherwise; line endings (\n, \r\n) are handled by the readers (csv, splitlines).
ENCODING = "utf-8-sig"


def read_text(path: str | Path) -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark dropped).

    Raises InputError naming the file, the line and the byte offset when it is not UTF-8.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode(ENCODING)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text (byte {e.start}: 0x{data[e.start]:02x}); save the file as UTF-8",
            file=path, line=line,
        ) from None


class JSONError(ValueError):
    """Text that is not strict JSON: `msg`, and `lineno`/`colno` where the parser gave them (else 0)."""

    def __init__(self, msg: str, lineno: int = 0, colno: int = 0) -> None:
        super().__init__(msg)
        self.msg, self.lineno, self.colno = msg, lineno, colno

    def where(self) -> str:
        return f" (column {self.colno})" if self.colno else ""


def _no_constant(name: str) -> Any:
    raise JSONError(f"{name} is not JSON (write null, or a number)")


def loads(text: str) -> Any:
    """`json.loads` for files a person or another tool wrote: NaN, Infinity and -Infinity (which
    Python's json accepts and writes) are refused, and nesting too deep to parse is an error, not a
    RecursionError. Raises JSONError."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise JSONError(e.msg, e.lineno, e.colno) from None
    except RecursionError:
        raise JSONError("nested too deeply to read") from None


def csv_rows(reader: Any, path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, row) for each row `reader` (a csv.reader) has left, the line counted before
    the row is read, since a quoted field may span lines. Raises InputError naming the file and the
    row's first line for a row the csv module cannot parse. Shared by the data and review readers."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"broken CSV: {e}", file=path, line=start) from None
        yield start, row


def jsonl_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL file, read through `read_text`.

    Raises InputError naming the file and line for broken JSON (with its column) or a line that
    is not a JSON object. Shared by the data, knowledge and audit readers.
    """
    path = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except JSONError as e:
            raise InputError(f"broken JSON: {e.msg}{e.where()}", file=path, line=n) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object per line", file=path, line=n)
        rows.append((n, obj))
    return rows
