"""Reading the user's text files one way: UTF-8 with or without a byte-order mark.

Every text file advise reads (task.yaml, JSONL and CSV data, knowledge documents) comes through
here, so a file saved by Excel ("CSV UTF-8" writes a byte-order mark) or by Notepad loads exactly
like the same file without the mark, and a file in another encoding is one clear error naming the
file, the line and the byte instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

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
