"""Ctrl-C and SIGTERM for the walkthrough (``make demo``), held back while a child process is started.

Python raises ``KeyboardInterrupt`` between any two bytecodes. Raised inside ``subprocess.Popen`` after
the fork, or between ``Popen`` returning and the ``try`` that stops the child, it leaves a server running
that nothing will stop. ``hack.demo`` installs :func:`interrupt` for both signals; code that starts a
server wraps the start and its recording in :func:`held`, and the interrupt is raised when the block
ends, where the caller's clean-up already knows the child. Without :func:`interrupt` installed (tests)
:func:`held` changes nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class _Held:
    """How many :func:`held` blocks are open, and whether a signal came in meanwhile."""

    depth = 0
    pending = False


_HELD = _Held()


def install() -> None:
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt`` in this (main) thread, or later in :func:`held`."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def interrupt(signum: int, frame: FrameType | None) -> None:
    """The signal handler: raise ``KeyboardInterrupt`` now, or when the outermost :func:`held` ends."""
    if _HELD.depth:
        _HELD.pending = True
        return
    raise KeyboardInterrupt


@contextmanager
def held() -> Iterator[None]:
    """Hold an interrupt that arrives inside the block back until the block ends."""
    _HELD.depth += 1
    try:
        yield
    finally:
        _HELD.depth -= 1
        if not _HELD.depth and _HELD.pending:
            _HELD.pending = False
            raise KeyboardInterrupt
