"""hack/ports.py: ports for test servers come from below the ephemeral range and are free when chosen."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hack import ports


def test_a_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    port = ports.free_port()

    assert ports.LOWEST <= port <= ports.below_ephemeral_range()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_a_port_something_is_bound_to_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = ports.free_port()
        choices = iter([busy, busy, free])
        monkeypatch.setattr(ports.random, "randint", lambda _low, _high: next(choices))

        assert ports.free_port() == free


def test_the_range_ends_below_the_kernel_s_ephemeral_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", setting)
    assert ports.below_ephemeral_range() == 39999

    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "missing")
    assert ports.below_ephemeral_range() == 32767
