"""What the parts of a run tell whoever watches it: progress of counted stages and steps without a count.

No display here (advisor/report/progress.py draws it): a lever, a backend or the runner is handed a
`ProgressFactory` and calls it; nothing below reaches up into the report.

    advance = progress("rag: predicting", 300)      # a stage of 300 items
    advance(32, 300)
    with status(progress, "lora: adding LoRA layers"):  # a step with nothing to count
        ...

A backend is handed a per-batch callback instead (`score_options(..., on_batch=fn)`): `fn(n)`
after each batch of `n` requests, so a bar moves per batch while the store commits per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, runtime_checkable

from advisor.types import OnBatch

__all__ = ["Advance", "NoProgress", "OnBatch", "Progress", "ProgressFactory", "status"]

Advance = Callable[..., None]  # advance(done, total, description=None)
ProgressFactory = Callable[[str, int], Advance]  # (description, total) -> advance


@runtime_checkable
class Progress(Protocol):
    """A progress factory that can also show a step without a count (`status`)."""

    def __call__(self, description: str, total: int) -> Advance: ...

    def status(self, text: str) -> AbstractContextManager[None]: ...


class NoProgress:
    """Progress that shows nothing (a quiet run, a test)."""

    def __call__(self, description: str, total: int) -> Advance:
        return _ignore

    def status(self, text: str) -> AbstractContextManager[None]:
        return nullcontext()


def _ignore(*args: object, **kwargs: object) -> None:
    return None


def status(progress: Progress | ProgressFactory | None, text: str) -> AbstractContextManager[None]:
    """`progress.status(text)` for a `Progress`; a no-op for None or a bare `(description, total)`
    factory (levers are handed one by tests and by callers outside a run)."""
    if isinstance(progress, Progress):
        return progress.status(text)
    return nullcontext()

