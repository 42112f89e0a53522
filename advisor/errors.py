"""The two errors a user can see: bad input (exit 2) and a failed run."""

from __future__ import annotations

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
