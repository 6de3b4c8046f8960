"""Both servers as real gunicorn processes over TLS on loopback, for the hostile-client and soak tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from hack.certs import CertificateAuthority, TlsFiles, create_ca, write_tls_files
from hack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The server the seed pod's annotation names (examples/client-cluster-alpha/prometheus-pod.yaml).
WEBHOOK_SERVER_URL = "https://esi-federation.cluster-main.example.com"


@dataclass
class Server:
    """A running server: its process, base URL, TLS files and stderr log."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    tls: TlsFiles
    ca: CertificateAuthority
    log_path: Path

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def children(self) -> list[int]:
        """The pids of the gunicorn workers."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]


def _wait_ready(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + path, verify=str(server.tls.ca_file), timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")


@contextmanager
def _run(command: Sequence[str], tmp: Path, name: str, ready: str, env: dict[str, str]) -> Iterator[Server]:
    ca = create_ca(f"{name} test CA")
    tls = write_tls_files(tmp / f"{name}-tls", ca, ca.issue(["127.0.0.1"]))
    port = free_port()
    log_path = tmp / f"{name}.log"
    argv = [*command, "--bind", f"127.0.0.1:{port}", "--tls-cert", str(tls.cert_file)]
    argv += ["--tls-key", str(tls.key_file)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO, env={**os.environ, **env})
    server = Server(process, f"https://127.0.0.1:{port}", port, tls, ca, log_path)
    try:
        _wait_ready(server, ready)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def federation_server(
    tmp: Path,
    documents: Sequence[dict[str, Any]],
    *,
    workers: int = 1,
    threads: int = 4,
    extra: Sequence[str] = (),
) -> Iterator[Server]:
    """``esi-federation serve`` on ``documents`` (one manifests directory, watched)."""
    manifests = tmp / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "seed.yaml").write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    metrics = tmp / "federation-metrics"
    metrics.mkdir(exist_ok=True)
    command = [str(BIN / "esi-federation"), "serve", "--manifests", str(manifests)]
    command += ["--workers", str(workers), "--threads", str(threads), "--rate-limit", "100000", *extra]
    with _run(command, tmp, "federation", "/readyz", {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}) as server:
        yield server


@contextmanager
def webhook_server(tmp: Path, *, workers: int = 1, threads: int = 4) -> Iterator[Server]:
    """``esi-webhook serve`` with a minimal configuration."""
    server_ca = create_ca("federation server CA (webhook test)")
    ca_file = tmp / "server-ca.crt"
    ca_file.write_bytes(server_ca.cert_pem)
    command = [str(BIN / "esi-webhook"), "serve", "--workers", str(workers), "--threads", str(threads)]
    command += ["--server-url", WEBHOOK_SERVER_URL, "--server-ca-file", str(ca_file)]
    command += ["--cluster-name", "client-cluster-alpha", "--init-image", "example.com/esi-cli:1"]
    with _run(command, tmp, "webhook", "/readyz", {}) as server:
        yield server
