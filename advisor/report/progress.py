"""Progress for a terminal and for a pipe: live bars, or plain lines a CI log can read.

`ProgressReporter` is the runner's progress factory: `reporter(description, total)` starts a
stage and returns `advance(done, total, description=None)`. `reporter.status(text)` wraps a
step that has no count (tokenising, loading weights) so that it is never silent.

    with ProgressReporter(console) as progress:
        advance = progress("rag: predicting", 300)
        advance(32, 300)
        with progress.status("lora: adding LoRA layers"):
            ...

On a terminal it draws rich bars. Anywhere else (a pipe, `tee`, a CI log) rich would draw
nothing, so it prints a plain line when a stage starts, at most every `every` seconds while it
moves (stage, done/total, rate, time left), a heartbeat while a step runs without moving, and
when it ends. Time left comes from the recent rate (the last `window` seconds), not the mean
since the start: cached items that fill a bar at once and a slow first batch both mislead a mean.

It implements `advisor.events.Progress` (the protocol levers, backends and the runner are
handed; nothing there imports this module). Backends report finished batches to an `on_batch`
callback they are given, which the predictor turns into bar moves (advisor/execute.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from advisor.events import Advance, status

__all__ = ["ProgressReporter", "RecentRate", "format_seconds", "make_progress", "status"]

Mode = Literal["rich", "plain", "quiet"]

PLAIN_EVERY_S = 10.0  # plain lines per stage at most this often (ADVISE_PROGRESS_EVERY overrides)
RATE_WINDOW_S = 60.0  # the "recent rate" behind time left
HEARTBEAT_MIN_S = 1.0  # a stage that does not move is re-announced at most this often
STATUS_AFTER_S = 2.0  # a step without a count is announced once it has run this long
STATUS_EVERY_FACTOR = 3  # ... and then re-announced every 3 intervals (30 s by default)


def format_seconds(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RecentRate:
    """Items per second over the last `window` seconds of (time, done) samples.

    The first sample is the stage's starting count (cached items included), so items that
    were already done never count as speed.
    """

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        self.samples.append((now, done))
        # Keep one sample older than the window so the span covers the whole window.
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Items per second, or None before two samples with progress between them."""
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def seconds_left(self, done: int, total: int) -> float | None:
        rate = self.rate()
        if rate is None or total <= 0:
            return None
        return max(0, total - done) / rate


class _Stage:
    def __init__(self, description: str, total: int, started: float) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.started = started
        self.rate = RecentRate()
        self.last_print = float("-inf")
        self.finished = False
        self.task_id: Any = None  # rich's task id


class RecentTimeLeftColumn(ProgressColumn):
    """Time left from the stage's recent rate (rich's own column averages since the start)."""

    def render(self, task: Any) -> Text:
        if task.finished:
            return Text("")
        eta_at = task.fields.get("eta_at")
        if eta_at is None:
            return Text("-:--:--", style="progress.remaining")
        return Text(format_seconds(eta_at - time.monotonic()) + " left", style="progress.remaining")


class ProgressReporter:
    """The runner's progress factory for a terminal (rich bars) or a pipe (plain lines).

    `mode` is picked from the console when not given: "rich" on a terminal, else "plain".
    Use it as a context manager; lines and bars stop when the block ends.
    """

    def __init__(self, console: Console | None = None, *, mode: Mode | None = None,
                 every: float | None = None, file: IO[str] | None = None) -> None:
        self.console = console or Console()
        self.mode: Mode = mode or ("rich" if self.console.is_terminal else "plain")
        env = os.environ.get("ADVISE_PROGRESS_EVERY")
        self.every = every if every is not None else float(env) if env else PLAIN_EVERY_S
        self.file = file
        self._lock = threading.RLock()
        self._stages: list[_Stage] = []
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._rich: Progress | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> ProgressReporter:
        if self.mode == "rich":
            self._rich = Progress(
                SpinnerColumn(finished_text=" "),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                RecentTimeLeftColumn(),
                console=self.console,
                transient=False,
            )
            self._rich.__enter__()
        elif self.mode == "plain":
            # A heartbeat, so a long step with nothing to count still shows up in a log.
            self._ticker = threading.Thread(target=self._tick, name="advise-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self._rich is not None:
            self._rich.__exit__(*exc)

    # -- the factory -----------------------------------------------------------------------------

    def __call__(self, description: str, total: int) -> Advance:
        """Start a stage of `total` items; returns `advance(done, total, description=None)`."""
        now = time.monotonic()
        stage = _Stage(description, total, now)
        with self._lock:
            self._finish_others()
            self._stages.append(stage)
            if self._rich is not None:
                stage.task_id = self._rich.add_task(description, total=total)
            elif self.mode == "plain":
                self._line(stage, now, force=True)

        def advance(done: int, total: int, description: str | None = None) -> None:
            self._advance(stage, done, total, description)

        return advance

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """Show `text` while the block runs (a spinner, or a plain line and heartbeats)."""
        now = time.monotonic()
        stage = _Stage(text, 0, now)
        with self._lock:
            self._stages.append(stage)
            if self._rich is not None:
                stage.task_id = self._rich.add_task(text, total=None)
            # plain: the heartbeat prints it once it has run STATUS_AFTER_S (quick steps stay quiet)
        try:
            yield
        finally:
            with self._lock:
                stage.finished = True
                elapsed = time.monotonic() - stage.started
                if self._rich is not None:
                    self._rich.remove_task(stage.task_id)
                    if elapsed >= STATUS_AFTER_S:
                        self._rich.console.print(f"{text}: done in {format_seconds(elapsed)}", markup=False,
                                                 highlight=False)
                elif self.mode == "plain" and stage.last_print > float("-inf"):
                    self._write(f"{text}: done in {format_seconds(elapsed)}")

    # -- internals -------------------------------------------------------------------------------

    def _finish_others(self) -> None:
        # A stage whose caller moved on without a last advance is over once the next one starts.
        for s in self._stages:
            if not s.finished and s.total and s.done >= s.total:
                s.finished = True

    def _advance(self, stage: _Stage, done: int, total: int, description: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            if stage.finished and (done, total) == (stage.done, stage.total):
                return  # the last batch and the store's commit both report the end: say it once
            if description:
                stage.description = description
            stage.total, stage.done = total, done
            stage.rate.add(now, done)
            left = stage.rate.seconds_left(done, total)
            if done >= total:
                stage.finished = True
            if self._rich is not None:
                self._rich.update(stage.task_id, completed=done, total=total,
                                  eta_at=None if left is None else now + left,
                                  **({"description": description} if description else {}))
            elif self.mode == "plain":
                self._line(stage, now, force=stage.finished)

    def _line(self, stage: _Stage, now: float, force: bool = False) -> None:
        if not force and now - stage.last_print < self.every:
            return
        stage.last_print = now
        total = stage.total
        parts = [f"{stage.description}: {stage.done}/{total}"]
        if total:
            parts[0] += f" ({100 * stage.done / total:.0f}%)"
        rate = stage.rate.rate()
        if stage.finished:
            parts.append(f"done in {format_seconds(now - stage.started)}")
        else:
            if rate is not None:
                parts.append(f"{rate:.2f}/s" if rate < 10 else f"{rate:.0f}/s")
            left = stage.rate.seconds_left(stage.done, total)
            if left is not None:  # a heartbeat between moves counts down from the last estimate
                left = max(0.0, left - (now - stage.rate.samples[-1][0]))
            elif now - stage.started >= 1.0:  # a repeated line still says time passes
                parts.append(f"{format_seconds(now - stage.started)} so far")
            parts.append(f"{format_seconds(left)} left" if left is not None else "time left unknown")
        self._write(", ".join(parts))

    def _tick(self) -> None:
        heartbeat = max(self.every, HEARTBEAT_MIN_S)
        status_every = max(STATUS_EVERY_FACTOR * self.every, HEARTBEAT_MIN_S)
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                for s in self._stages:
                    if s.finished or now - s.last_print < heartbeat:
                        continue
                    if s.total:
                        self._line(s, now)
                    elif now - s.started >= STATUS_AFTER_S:
                        first = s.last_print == float("-inf")
                        if not first and now - s.last_print < status_every:
                            continue  # nothing new to say but that it still runs: say it less often
                        s.last_print = now
                        self._write(f"{s.description} ..." if first
                                    else f"{s.description} ... ({format_seconds(now - s.started)} so far)")

    def _write(self, line: str) -> None:
        out = self.file or self.console.file or sys.stdout
        out.write(line + "\n")
        out.flush()  # a pipe is block-buffered: without this a log shows nothing for minutes


def make_progress(console: Console, quiet: bool) -> ProgressReporter:
    """The CLI's reporter: none when quiet, bars on a terminal, plain lines in a pipe."""
    return ProgressReporter(console, mode="quiet" if quiet else None)
