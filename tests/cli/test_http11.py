"""The minimal HTTP/1.1 client: request bytes and every way an answer can be framed (or broken)."""

from __future__ import annotations

import io

import pytest

from cli.http11 import ProtocolError, TooLargeError, build_request, read_response


def parse(raw: bytes, max_body: int = 1024) -> tuple[int, dict[str, str], bytes]:
    response = read_response(io.BytesIO(raw), max_body)
    return response.status, response.headers, response.body


def test_a_request_carries_host_close_headers_and_a_sized_body() -> None:
    raw = build_request("POST", "127.0.0.1:8443", "/v1/secrets", {"Authorization": "Bearer t"}, b'{"a": 1}')

    assert raw == (
        b"POST /v1/secrets HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nConnection: close\r\n"
        b"Authorization: Bearer t\r\nContent-Length: 8\r\n\r\n"
        b'{"a": 1}'
    )


def test_a_get_has_no_body_and_no_length() -> None:
    raw = build_request("GET", "h", "/v1/whoami", {}, None)

    assert raw == b"GET /v1/whoami HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        build_request("GET", "h", "/", {"Authorization": "Bearer a\r\nX-Injected: 1"}, None)


def test_a_body_framed_by_content_length() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}trailing junk"

    assert parse(raw) == (200, {"content-type": "application/json", "content-length": "2"}, b"{}")


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    assert parse(raw)[2] == b"Wikipedia in\r\n\r\nchunks."


def test_a_body_up_to_the_end_of_the_connection() -> None:
    assert parse(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 3\r\n\r\nbusy") == (
        503,
        {"retry-after": "3"},
        b"busy",
    )


def test_interim_answers_are_skipped_and_repeated_headers_joined() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nVary: a\r\nVary: b\r\n\r\n"

    assert parse(raw) == (204, {"vary": "a, b"}, b"")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "without answering"),
        (b"SSH-2.0-OpenSSH\r\n", "status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Len", "closed in the middle"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed in the middle"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
            "not followed by CRLF",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", "longer than 64 KiB"),
    ],
)
def test_a_malformed_answer_is_a_protocol_error(raw: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"
        + b"x" * 1000
        + b"\r\n1\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 1025,
    ],
)
def test_an_answer_over_the_limit_is_refused_without_reading_it_all(raw: bytes) -> None:
    with pytest.raises(TooLargeError):
        parse(raw, max_body=1000 if b"3e8" in raw else 1024)
