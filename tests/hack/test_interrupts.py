"""hack/interrupts.py: a SIGTERM during a held block is raised when the block ends, not inside it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from hack import interrupts


@pytest.fixture
def installed() -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_inside_held_blocks(signum: int, reached: list[str]) -> None:
    with interrupts.held():
        os.kill(os.getpid(), signum)
        with interrupts.held():  # nested: only the outermost block's end raises
            reached.append("inner")
        reached.append("after the signal")


def _signal_unheld(signum: int, reached: list[str]) -> None:
    os.kill(os.getpid(), signum)
    reached.append("after the signal")


@pytest.mark.usefixtures("installed")
def test_a_signal_inside_a_held_block_is_raised_when_the_block_ends() -> None:
    reached: list[str] = []

    with pytest.raises(KeyboardInterrupt):
        _signal_inside_held_blocks(signal.SIGTERM, reached)

    assert reached == ["inner", "after the signal"]


@pytest.mark.usefixtures("installed")
def test_a_signal_outside_a_held_block_is_raised_at_once() -> None:
    reached: list[str] = []

    with pytest.raises(KeyboardInterrupt):
        _signal_unheld(signal.SIGINT, reached)

    assert reached == []
    with interrupts.held():  # nothing left pending from before
        reached.append("held")
    assert reached == ["held"]
