"""A store call as a whole within one deadline, not each of its reads.

``requests`` bounds every socket operation by the read timeout, so a server that drips its answer one
byte at a time holds a request thread for as long as it drips. A session of ``DeadlineSession`` gives
each call a deadline; the connections of its pools record which socket the calling thread uses, and one
watchdog thread per process shuts that socket down once the deadline has passed: the blocked read
returns at once and the call fails as a lost connection. (A TLS handshake needs none of this: CPython
applies the socket timeout to a handshake as a whole; its socket is registered once it is done.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

WATCH_INTERVAL = 0.1

_lock = threading.Lock()
_watchdog = {"pid": 0}  # the process whose watchdog thread runs (a fork leaves the thread behind)


class _Call:
    """One call in flight: its deadline, the socket it uses now, and whether the watchdog cut it."""

    __slots__ = ("cut", "deadline", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.cut = False


_active: dict[int, _Call] = {}  # by calling thread


@contextlib.contextmanager
def call_deadline(seconds: float) -> Iterator[_Call]:
    """Cut the calling thread's store connection if the block takes longer than ``seconds``."""
    ident = threading.get_ident()
    call = _Call(time.monotonic() + seconds)
    with _lock:
        _active[ident] = call
        if _watchdog["pid"] != os.getpid():  # none yet, or the parent's, which a fork left behind
            _watchdog["pid"] = os.getpid()
            threading.Thread(target=_watch, name="store-deadlines", daemon=True).start()
    try:
        yield call
    finally:
        with _lock:
            _active.pop(ident, None)


def _register(sock: socket.socket | None) -> None:
    with _lock:
        call = _active.get(threading.get_ident())
        if call is not None:
            call.sock = sock


def _watch() -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        now = time.monotonic()
        with _lock:
            for call in _active.values():
                if call.deadline <= now and call.sock is not None:
                    # The plain socket's shutdown: the TLS one would tear down state the reader uses.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(call.sock, socket.SHUT_RDWR)
                    call.sock, call.cut = None, True


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)  # a kept-alive connection is not connected again
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections tell the watchdog which socket the calling thread uses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with the watched pool classes."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineSession(requests.Session):
    """A session whose every call (connect, request, the whole answer) ends within ``deadline`` s."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        self.mount("http://", WatchedAdapter())
        self.mount("https://", WatchedAdapter())

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send ``request`` and read its answer (unless streamed) before the deadline."""
        with call_deadline(self.deadline) as call:
            try:
                response = super().send(request, **kwargs)
            except requests.RequestException as exc:
                if call.cut:
                    raise self._late() from exc
                raise
        # A cut answer can parse as a short one (headers end at EOF, a body up to the close).
        if call.cut:
            raise self._late()
        return response

    def _late(self) -> requests.Timeout:
        return requests.Timeout(f"no complete answer within {self.deadline:g} s")
