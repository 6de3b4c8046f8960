"""HTTPS to a client cluster's API server, trusting only what its KubernetesFederation says.

Both outbound calls of the server go through here: the JWKS fetch and the optional TokenReview. The
trust anchor is the federation's ``caBundle`` (the system store when absent), never anything a caller
sent; redirects are not followed; there are no retries; the answer is read up to a cap.

``jwks_connect_timeout`` bounds the TCP connect and ``jwks_total_timeout`` the whole exchange: a
watchdog shuts the socket down when it expires, so an endpoint that drips its handshake, its headers or
its body one byte at a time is cut off on time (a per-read timeout never fires while bytes keep coming).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from federation.settings import Settings


class PinnedRequestError(Exception):
    """No usable answer (refused URL, TLS or connection failure, timeout, oversize); safe to log."""


@dataclass(frozen=True)
class PinnedAnswer:
    """The status and the body of an answer."""

    status: int
    body: bytes


def pinned_request(
    method: str,
    url: str,
    *,
    ca_bundle: str | None,
    headers: Mapping[str, str],
    settings: Settings,
    max_bytes: int,
    body: bytes | None = None,
) -> PinnedAnswer:
    """Send one request to ``url`` (``https://`` only) and read its answer, at most ``max_bytes``."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise PinnedRequestError(f"{url} is not an https:// URL")
    context = _trusting(ca_bundle)
    total = settings.jwks_total_timeout
    connection = _Connection(
        parts.hostname,
        parts.port or 443,
        context=context,
        timeout=min(settings.jwks_connect_timeout, total),
    )
    deadline = time.monotonic() + total
    watchdog = threading.Timer(total, _cut, args=(connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        # Past the connect, each read may take what is left; the watchdog bounds their sum.
        connection.sock.settimeout(total)
        connection.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), body, dict(headers)
        )
        response = connection.getresponse()
        answer = PinnedAnswer(response.status, _read_capped(response, max_bytes))
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline:
            raise PinnedRequestError(f"{url}: no complete answer within {total:g} s") from exc
        raise PinnedRequestError(f"{url}: {type(exc).__name__}") from exc
    finally:
        watchdog.cancel()
        connection.close()
    if time.monotonic() >= deadline:
        raise PinnedRequestError(f"{url}: no complete answer within {total:g} s")
    return answer


def _trusting(ca_bundle: str | None) -> ssl.SSLContext:
    """A client context trusting only ``ca_bundle`` (the system store when None)."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=ca_bundle)
    except (ssl.SSLError, ValueError):
        # A garbled bundle (a PEM header around damaged base64) passes a text check but not OpenSSL:
        # the federation's own fetch fails, nothing else does. OpenSSL's message is not repeated.
        raise PinnedRequestError("the caBundle holds no certificate that can be loaded") from None


class _Connection(http.client.HTTPSConnection):
    """The TLS socket is ``sock`` before its handshake starts, so the watchdog can cut a dripping one."""

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            raw, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock.do_handshake()


def _cut(connection: http.client.HTTPSConnection) -> None:
    # Any blocked read or handshake on this socket returns at once; the request then fails. The plain
    # socket's shutdown: the TLS one would tear down state the reading thread still uses.
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to cut
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _read_capped(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    body = bytearray()
    while chunk := response.read(16384):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PinnedRequestError(f"the answer is larger than {max_bytes} bytes")
    return bytes(body)
