"""A minimal HTTP/1.1 client over TLS: one request per connection, ``Connection: close``.

Why not ``http.client``: importing it pulls in the ``email`` package, whose modules compile dozens of
regular expressions at import time. That was the largest single cost of an esi-cli run (more than the
TLS handshake and the request together), and esi-cli needs none of it: it sends one request and
reads one answer. This module speaks exactly that much HTTP/1.1 (status line, headers, a body framed
by ``Content-Length``, chunked encoding, or the end of the connection) and refuses anything else.
"""

from __future__ import annotations

import io
import socket
import time

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping
    from typing import BinaryIO

MAX_LINE = 64 * 1024
MAX_HEADERS = 100
NO_BODY_STATUSES = frozenset({204, 304})
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class ProtocolError(Exception):
    """The server closed the connection early or answered something that is not HTTP/1.x."""


class TooLargeError(Exception):
    """The answer's body is larger than the caller accepts."""


class Response:
    """Status, headers (lower-case names; repeated ones joined by ``, ``) and body of one answer."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def exchange(
    host: str,
    port: int,
    request: bytes,
    *,
    timeout: float,
    context: ssl.SSLContext,
    max_body: int,
) -> Response:
    """Connect to ``host:port`` over TLS (verified by ``context``), send ``request``, read the answer.

    ``timeout`` bounds the whole exchange, not each read: every step may wait only for what is left of
    it, so a server that drips its handshake or its answer cannot hold the call longer. Raises
    ``OSError`` (``ssl.SSLError`` included, ``TimeoutError`` when the time is spent) for network and TLS
    failures, ``ProtocolError`` for a malformed answer, ``TooLargeError``.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as raw:
        tls = context.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        try:
            # The ssl module bounds a whole handshake, and a whole write, by the socket's timeout.
            tls.settimeout(_left(deadline, timeout))
            tls.do_handshake()
            tls.settimeout(_left(deadline, timeout))
            tls.sendall(request)
            return read_response(io.BufferedReader(_DeadlineReader(tls, deadline, timeout)), max_body)
        except TimeoutError:
            raise TimeoutError(f"no complete answer within {timeout:g}s") from None
        finally:
            tls.close()


class _DeadlineReader(io.RawIOBase):
    """The TLS socket as a raw stream whose every read waits only for what is left until ``deadline``.

    A socket timeout alone applies to each read, and a buffered ``readline`` makes as many reads as
    the server sends pieces; this is what keeps a dripping answer within the exchange's timeout.
    """

    def __init__(self, tls: ssl.SSLSocket, deadline: float, timeout: float) -> None:
        super().__init__()
        self._tls = tls
        self._deadline = deadline
        self._timeout = timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # BufferedReader passes one
        self._tls.settimeout(_left(self._deadline, self._timeout))
        return self._tls.recv_into(buffer)


def _left(deadline: float, timeout: float) -> float:
    """Seconds left until ``deadline``; ``TimeoutError`` when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no complete answer within {timeout:g}s")
    return left


def build_request(
    method: str, host: str, target: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The bytes of one request: request line, ``Host``, ``Connection: close``, ``headers``, ``body``."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("a request line or header holds a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def read_response(reader: BinaryIO, max_body: int) -> Response:
    """Parse one answer from ``reader``, skipping interim ``1xx`` answers."""
    while True:
        status = _status_line(reader)
        headers = _headers(reader)
        if not 100 <= status < 200:
            break
    if status in NO_BODY_STATUSES:
        return Response(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, _chunked_body(reader, max_body))
    if "content-length" in headers:
        return Response(status, headers, _sized_body(reader, headers["content-length"], max_body))
    return Response(status, headers, _body_until_close(reader, max_body))


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("an answer line is longer than 64 KiB")
    if not line.endswith(b"\n"):
        raise ProtocolError("the connection closed in the middle of the answer")
    return line.rstrip(b"\r\n")


def _status_line(reader: BinaryIO) -> int:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("the server closed the connection without answering")
    version, _, rest = line.rstrip(b"\r\n").partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError("the answer does not start with an HTTP/1.x status line")
    return int(code)


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if not line:
            return headers
        name, separator, value = line.decode("latin-1").partition(":")
        if not separator or not name or name != name.strip():
            raise ProtocolError("a malformed header line in the answer")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    raise ProtocolError(f"the answer has more than {MAX_HEADERS} headers")


def _sized_body(reader: BinaryIO, length_text: str, max_body: int) -> bytes:
    lengths = {part.strip() for part in length_text.split(",")}
    length_value = lengths.pop() if len(lengths) == 1 else ""
    if not length_value.isdigit():
        raise ProtocolError("the answer has an invalid Content-Length")
    length = int(length_value)
    if length > max_body:
        raise TooLargeError(f"the answer is larger than {max_body} bytes")
    return _exactly(reader, length)


def _chunked_body(reader: BinaryIO, max_body: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        if not size_text or size_text.strip(_HEX_DIGITS):
            raise ProtocolError("the answer has an invalid chunk size")
        size = int(size_text, 16)
        if size == 0:
            _headers(reader)  # trailers, up to the blank line that ends the answer
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise TooLargeError(f"the answer is larger than {max_body} bytes")
        chunks.append(_exactly(reader, size))
        if _line(reader):
            raise ProtocolError("a chunk of the answer is not followed by CRLF")


def _body_until_close(reader: BinaryIO, max_body: int) -> bytes:
    body = reader.read(max_body + 1)
    if len(body) > max_body:
        raise TooLargeError(f"the answer is larger than {max_body} bytes")
    return body


def _exactly(reader: BinaryIO, length: int) -> bytes:
    data = reader.read(length)
    if len(data) != length:
        raise ProtocolError("the connection closed in the middle of the answer's body")
    return data
