"""Free TCP ports on loopback for the servers that tests, the demo and the benchmarks start.

A port from ``bind(port 0)`` comes from the kernel's ephemeral range, the same range every outgoing
connection takes its local port from: under a parallel test run the port could be taken by some
client's connection between choosing it and the server binding it ("address already in use"). So the
port is chosen at random below that range, where only explicit binds land, and checked to be free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 20000
ATTEMPTS = 200
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def below_ephemeral_range() -> int:
    """The highest port below the kernel's ephemeral range (32767 when the range cannot be read)."""
    try:
        start = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32768
    return max(LOWEST + 1000, start - 1)


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing is bound to right now, below the ephemeral range."""
    highest = below_ephemeral_range()
    for _ in range(ATTEMPTS):
        port = random.randint(LOWEST, highest)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on {host} between {LOWEST} and {highest}")
