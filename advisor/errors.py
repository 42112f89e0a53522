"""The errors a user can see: bad input (exit 2), a failed run, a full disk (exit 1)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path


class AdviseError(Exception):
    """Something the user can fix; the CLI prints it on one line with no traceback."""

    exit_code = 1


class InputError(AdviseError):
    """Bad input: a spec, a data file, a flag. Names the file, line and field when known.

    >>> str(InputError("expected an object", file="eval.jsonl", line=3, field="output"))
    'eval.jsonl:3: output: expected an object'
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:  # computed on demand, so a caller can add the file later
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"


class BackendError(AdviseError):
    """A model backend failed: unreachable server, missing model files."""

    exit_code = 2


class DiskFullError(AdviseError):
    """The disk filled while a run or a report was being written. Exit code 1: the command stopped,
    and everything saved before it (every answer in advise.sqlite) is kept; free space and run again."""

    exit_code = 1


# SQLite's primary result codes (the low byte of an extended code) that mean the disk, not the data.
SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_FULL = 8, 14, 13
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` says the disk (or the user's quota) is full: an OSError ENOSPC/EDQUOT or SQLite's
    SQLITE_FULL ("database or disk is full")."""
    if isinstance(e, sqlite3.Error):
        return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL or "disk is full" in str(e)
    return isinstance(e, OSError) and e.errno in _FULL_ERRNOS


def is_not_writable(e: BaseException) -> bool:
    """Whether `e` says a path cannot be written: an OSError EROFS/EACCES/EPERM, or SQLite's
    SQLITE_READONLY or SQLITE_CANTOPEN ("unable to open database file")."""
    if isinstance(e, sqlite3.Error):
        return (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF in {SQLITE_READONLY, SQLITE_CANTOPEN}
    return isinstance(e, OSError) and e.errno in _READ_ONLY_ERRNOS


def size_text(n: float) -> str:
    """Bytes as people read them: '812 B', '3.4 kB', '1.2 MB', '2.0 GB' (powers of 1000)."""
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"
