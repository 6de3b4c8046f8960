"""End to end over TLS: ``esi-webhook serve`` (and plain gunicorn) in a subprocess on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hack.certs import CertificateAuthority, client_ssl_context, create_ca, write_tls_files
from tests.webhook.helpers_review import CLUSTER, SERVER_URL, apply, assert_valid_pod, decoded_patch, review
from tests.webhook.helpers_shapes import seed_pod

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@contextmanager
def running(
    argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run a server on a loopback socket the test bound itself (no port race); yield its port."""
    with socket.socket() as listener, log_file.open("wb") as log:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        process = subprocess.Popen(
            [*argv, "--bind", f"fd://{listener.fileno()}"],
            pass_fds=[listener.fileno()],
            stderr=log,
            env={**os.environ, **(env or {})},
        )
    try:
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(
    port: int, method: str, path: str, body: Any = None, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """One HTTP(S) request to 127.0.0.1:port."""
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_healthy(port: int, context: ssl.SSLContext | None, process: subprocess.Popen[bytes]) -> None:
    """Poll /healthz until it answers 200 (the server needs a moment to fork its workers)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if request(port, "GET", "/healthz", context=context)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    pytest.fail("the server did not become healthy")


def tls_files(directory: Path, ca: CertificateAuthority) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by ``ca``; returns (cert, key)."""
    directory.mkdir(exist_ok=True)
    files = write_tls_files(directory, ca, ca.issue(["127.0.0.1"]))
    return files.cert_file, files.key_file


def test_serve_answers_reviews_over_tls_and_follows_a_rotated_certificate(tmp_path: Path) -> None:
    old_ca, new_ca = create_ca("old"), create_ca("new")
    cert, key = tls_files(tmp_path / "live", old_ca)
    argv = [str(BIN / "esi-webhook"), "serve", "--tls-cert", str(cert), "--tls-key", str(key)]
    argv += ["--cluster-name", CLUSTER, "--server-url", SERVER_URL, "--workers", "1", "--threads", "2"]
    log_file = tmp_path / "server.log"
    with running(argv, log_file) as (port, process):
        old_context = client_ssl_context(old_ca.cert_pem)
        wait_until_healthy(port, old_context, process)

        status, body = request(port, "POST", "/mutate", review(seed_pod()), old_context)
        assert status == 200
        mutated = apply(seed_pod(), decoded_patch(json.loads(body)))
        assert_valid_pod(mutated)
        assert request(port, "POST", "/mutate", {"not": "a review"}, old_context)[0] == 400
        assert request(port, "GET", "/readyz", context=old_context)[0] == 200
        assert b"esi_webhook_reviews_total" in request(port, "GET", "/metrics", context=old_context)[1]

        new_cert, new_key = tls_files(tmp_path / "next", new_ca)
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        new_context = client_ssl_context(new_ca.cert_pem)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert request(port, "GET", "/healthz", context=new_context)[0] == 200
                break
            except ssl.SSLError:
                assert time.monotonic() < deadline, "the rotated certificate was never served"
                time.sleep(0.2)
        with pytest.raises(ssl.SSLError):
            request(port, "GET", "/healthz", context=old_context)
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    for line in lines:
        json.loads(line)
    assert any(json.loads(line).get("event") == "tls_reload" for line in lines)


def test_the_wsgi_factory_runs_under_plain_gunicorn(tmp_path: Path) -> None:
    argv = [str(BIN / "gunicorn"), "--workers", "1", "--no-control-socket", "webhook.app:create_app()"]
    env = {
        "ESI_WEBHOOK_CLUSTER_NAME": CLUSTER,
        "ESI_WEBHOOK_SERVER_URL": SERVER_URL,
        "PYTHONPATH": os.getcwd(),
    }
    with running(argv, tmp_path / "gunicorn.log", env) as (port, process):
        wait_until_healthy(port, None, process)
        status, body = request(port, "POST", "/mutate", review(seed_pod()))
        assert status == 200
        assert decoded_patch(json.loads(body))
