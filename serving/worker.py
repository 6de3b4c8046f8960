"""A gunicorn gthread worker that gives a pool thread only a connection whose request has arrived.

gunicorn's gthread worker hands every accepted connection to a pool thread, which then runs the TLS
handshake and reads the request head with no time limit: a few dozen clients that send one byte and go
silent hold every thread, and nobody else is answered. Here the worker's event loop does that part
instead, without blocking: the TLS handshake, the request head and a body of known, small length are
read as they arrive, within ``PREPARE_SECONDS`` of the connection becoming readable; only then does a
pool thread parse and serve the request. A connection that misses the deadline is closed. Reads left to
the thread (a chunked or larger body) share one deadline, ``BODY_SECONDS``.

Errors gunicorn's parser raises are answered without echoing the request: a malformed header line such
as ``Authorization Bearer <token>`` (no colon) would otherwise be written both to the log and into the
400 page.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from gunicorn import http, util
from gunicorn import sock as gsock
from gunicorn.http import errors as herrors
from gunicorn.workers.gthread import TConn, ThreadWorker

PREPARE_SECONDS = 10.0
BODY_SECONDS = 10.0
# Larger bodies are read by the pool thread, under BODY_SECONDS; both servers refuse bodies over 64 KiB.
PREREAD_BODY_BYTES = 256 * 1024
# The head gunicorn accepts (limit_request_line + limit_request_fields * limit_request_field_size) is far
# below this; past it the request goes to the parser, which answers 431.
MAX_HEAD_BYTES = 128 * 1024

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r\n", re.IGNORECASE)
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:", re.IGNORECASE)

_ANSWERS: dict[type[BaseException], tuple[int, str]] = {
    herrors.LimitRequestLine: (414, "URI Too Long"),
    herrors.LimitRequestHeaders: (431, "Request Header Fields Too Large"),
    herrors.UnsupportedTransferCoding: (501, "Not Implemented"),
    herrors.ExpectationFailed: (417, "Expectation Failed"),
    herrors.ForbiddenProxyRequest: (403, "Forbidden"),
}
_CLIENT_ERRORS: tuple[type[BaseException], ...] = (herrors.ParseException, ssl.SSLError)


class _DeadlineSocket:
    """What the request parser reads from: the connection's socket, each read bounded by one deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + BODY_SECONDS

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise herrors.NoMoreData(b"")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            # As a client that went away: closed without a log line, like gunicorn's own disconnects.
            raise herrors.NoMoreData(b"") from None
        finally:
            # Writing the answer may take longer than what was left of the read deadline.
            self.sock.settimeout(BODY_SECONDS)


@dataclass(eq=False)
class _Preparing:
    """A connection whose handshake or request head is still arriving."""

    conn: TConn
    deadline: float
    handshaking: bool
    buffer: bytearray = field(default_factory=bytearray)


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gthread with the handshake and request read done in the event loop, under a deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._preparing: dict[TConn, _Preparing] = {}

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and start its handshake or head read in the event loop."""
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())
        # The worker builds the parser itself; gunicorn's own init would handshake in a pool thread.
        conn.initialized = True
        conn.data_ready = True
        try:
            if self.cfg.is_ssl:
                conn.sock = gsock.ssl_context(self.cfg).wrap_socket(
                    client,
                    server_side=True,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                    do_handshake_on_connect=False,
                )
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        except OSError:
            self._drop(conn)
            return
        conn.parser.unreader.sock = _DeadlineSocket(conn.sock)
        self._start(conn, handshaking=self.cfg.is_ssl)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection's next request starts: read its head in the event loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start(conn, handshaking=False)

    def enqueue_req(self, conn: TConn) -> None:
        """Give the connection to a pool thread, with a fresh deadline for what is left to read."""
        reader = conn.parser.unreader.sock
        if isinstance(reader, _DeadlineSocket):
            reader.deadline = time.monotonic() + BODY_SECONDS
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """Close connections past their deadline, as gunicorn does with its own pending ones; a stopping
        worker closes them all (no request of theirs has arrived, none is cut short)."""
        super().murder_pending()
        now = time.monotonic() if self.alive else float("inf")
        for late in [p for p in self._preparing.values() if p.deadline <= now]:
            self._forget(late)
            self._drop(late.conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request gunicorn could not parse without repeating any of it, in the answer or the log."""
        if not isinstance(exc, _CLIENT_ERRORS):
            super().handle_error(req, client, addr, exc)
            return
        status, reason = next(
            (answer for kind, answer in _ANSWERS.items() if isinstance(exc, kind)), (400, "Bad Request")
        )
        ip = addr[0] if addr else ""
        self.log.warning("invalid request from ip=%s: %s", ip, type(exc).__name__)
        try:
            util.write_error(client, status, reason, "")
        except Exception:  # the client is gone; nothing else to tell it
            self.log.debug("failed to send the error answer")

    def _start(self, conn: TConn, *, handshaking: bool) -> None:
        preparing = _Preparing(conn, time.monotonic() + PREPARE_SECONDS, handshaking)
        self._preparing[conn] = preparing
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, lambda _sock: self._advance(preparing))

    def _advance(self, preparing: _Preparing) -> None:
        conn = preparing.conn
        try:
            if preparing.handshaking:
                conn.sock.do_handshake()
                preparing.handshaking = False
                self.poller.modify(conn.sock, selectors.EVENT_READ, lambda _s: self._advance(preparing))
            while True:
                chunk = conn.sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("the client closed the connection")
                preparing.buffer.extend(chunk)
                if _complete(preparing.buffer):
                    self._hand_over(preparing)
                    return
        except ssl.SSLWantWriteError:
            self.poller.modify(conn.sock, selectors.EVENT_WRITE, lambda _s: self._advance(preparing))
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except OSError:  # ssl.SSLError included: a failed handshake, a reset, a closed socket
            self._forget(preparing)
            self._drop(conn)

    def _hand_over(self, preparing: _Preparing) -> None:
        conn = preparing.conn
        self._forget(preparing)
        conn.sock.settimeout(BODY_SECONDS)
        conn.parser.unreader.unread(bytes(preparing.buffer))
        self.enqueue_req(conn)

    def _forget(self, preparing: _Preparing) -> None:
        self._preparing.pop(preparing.conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(preparing.conn.sock)

    def _drop(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()


def _complete(buffer: bytearray) -> bool:
    """Whether a pool thread can take the request: its head, and its body when small and of known length."""
    if len(buffer) > MAX_HEAD_BYTES:
        return True
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = bytes(buffer[: end + 2])
    if _TRANSFER_ENCODING.search(head):
        return True
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        return True
    wanted = int(length.group(1))
    return wanted > PREREAD_BODY_BYTES or len(buffer) >= end + 4 + wanted
