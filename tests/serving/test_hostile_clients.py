"""Both servers under hostile clients: silent and slow connections, malformed requests carrying a token."""

from __future__ import annotations

import signal
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from serving.worker import PREPARE_SECONDS
from tests.helpers_stack import fake_store
from tests.serving.helpers_servers import Server, federation_server, webhook_server

pytestmark = [pytest.mark.slow]

# Something shaped like a signed token, recognisable in any log or answer.
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJob3N0aWxlLXRlc3QifQ.c2lnbmF0dXJlLW5ldmVyLWxvZ2dlZA"


@pytest.fixture(scope="module", params=["federation", "webhook"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "federation":
        with federation_server(tmp, [fake_store("vault-prod", {"k": "v"})]) as served:
            yield served
    else:
        with webhook_server(tmp) as served:
            yield served


def _tls(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.tls.ca_file))


def _silent(server: Server, kind: str) -> socket.socket:
    """A connection that starts and then stops: mid-handshake, mid-head or mid-body."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if kind == "handshake":
        raw.sendall(b"\x16")
        return raw
    wrapped = _tls(server).wrap_socket(raw, server_hostname="127.0.0.1")
    if kind == "head":
        wrapped.sendall(b"POST /v1/secrets HTTP/1.1\r\nHost: x\r\n")
    else:
        wrapped.sendall(b"POST /v1/secrets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    return wrapped


def _healthz_seconds(server: Server) -> float:
    started = time.monotonic()
    response = requests.get(server.url + "/healthz", verify=str(server.tls.ca_file), timeout=10)
    assert response.status_code == 200
    return time.monotonic() - started


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def test_silent_connections_neither_hold_threads_nor_stay_open(server: Server) -> None:
    # 4 threads serve; 120 connections stop mid-handshake, mid-head or mid-body and stay open.
    kinds = ["handshake", "head", "body"] * 40
    with ThreadPoolExecutor(8) as pool:
        held = list(pool.map(lambda kind: _silent(server, kind), kinds))
    opened = time.monotonic()
    try:
        assert max(_healthz_seconds(server) for _ in range(10)) < 2.0
        time.sleep(max(0.0, opened + PREPARE_SECONDS + 2 - time.monotonic()))
        assert all(_closed_by_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
    assert _healthz_seconds(server) < 2.0


def test_a_malformed_header_line_never_reaches_the_answer_or_the_log(server: Server) -> None:
    with _tls(server).wrap_socket(
        socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="127.0.0.1"
    ) as sock:
        sock.sendall(f"POST /v1/secrets HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {TOKEN}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert TOKEN.encode() not in answer
    assert "Authorization" not in answer.decode()
    # The log line is written before the answer; look at everything the server logged so far.
    log = server.log()
    assert "InvalidHeader" in log
    assert TOKEN not in log
    assert TOKEN.split(".")[1] not in log


def test_a_head_cut_short_is_not_logged(server: Server) -> None:
    with _tls(server).wrap_socket(
        socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="127.0.0.1"
    ) as sock:
        sock.sendall(f"POST /v1/secrets HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
    time.sleep(0.5)
    assert TOKEN.split(".")[1] not in server.log()


def test_a_stopping_server_does_not_wait_for_silent_connections(tmp_path: Path) -> None:
    with webhook_server(tmp_path) as served:
        held = [_silent(served, kind) for kind in ("handshake", "head", "body") * 5]
        try:
            started = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            assert served.process.wait(timeout=30) == 0
            assert time.monotonic() - started < PREPARE_SECONDS / 2
        finally:
            for sock in held:
                sock.close()
