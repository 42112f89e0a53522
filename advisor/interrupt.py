"""Ctrl-C during a run: the first stops the run cleanly, a second exits at once.

    with interrupt.handled():                     # the `advise` command, around a command
        ...
    with interrupt.deferred(lambda: q.put(STOP)): # a loop that collects answers from worker threads
        item = q.get()                            # the first Ctrl-C arrives as STOP, not as an exception

The first SIGINT raises KeyboardInterrupt in the main thread as Python's own handler does, except
where a loop has asked for it to be `deferred`: then the loop is woken (its `wake` is called from
the signal handler, so it must be reentrant: `queue.SimpleQueue.put` is) and raises
KeyboardInterrupt itself once it has kept the answers that had already arrived. Worker threads
read `interrupted()` before each request they send. A second SIGINT prints one line and ends the
process with exit code 130 (os._exit: no cleanup, no traceback; the run store commits every
answer as it comes, so nothing stored is lost).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

AGAIN = b"interrupted again: exiting now; everything stored so far is kept.\n"

_hits = 0
_wakers: list[Callable[[], None]] = []


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since `handled()` began (always False outside it)."""
    return _hits > 0


def _on_sigint(signum: int, frame: Any) -> None:
    global _hits
    _hits += 1
    if _hits > 1:
        os.write(2, AGAIN)
        os._exit(130)
    if _wakers:
        for wake in list(_wakers):
            wake()
        return
    raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """Ctrl-C as this module describes, inside the block. Outside the main thread (where no signal
    handler can be set), or where SIGINT is ignored, it does nothing. The previous handler comes back when the block ends,
    unless the block ends interrupted: a second Ctrl-C while the process exits still exits at once."""
    global _hits
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # no handler can be set here, or Ctrl-C is meant to be ignored (nohup, a background job)
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _hits = 0
    try:
        yield
    except KeyboardInterrupt:
        raise  # keep this handler: the process is on its way out
    except BaseException:
        signal.signal(signal.SIGINT, previous)
        raise
    else:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def deferred(wake: Callable[[], None]) -> Iterator[None]:
    """Inside the block, the first Ctrl-C calls `wake()` (from the signal handler: it must be
    reentrant) instead of raising KeyboardInterrupt wherever the main thread happens to be."""
    _wakers.append(wake)
    try:
        yield
    finally:
        _wakers.remove(wake)
