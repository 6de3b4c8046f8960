"""Fixtures of esi-cli's tests: a TLS stub federation server, a token file, and ways to run esi-cli."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers_run import RunCli
from tests.cli.helpers_stub_federation import StubFederation, start_stub


@pytest.fixture(autouse=True)
def _no_esi_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's own ESI_* variables must not leak into a test."""
    for name in list(os.environ):
        if name.startswith("ESI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def token() -> str:
    """A fresh bearer token for this test only."""
    return f"stub-token-{secrets.token_hex(16)}"


@pytest.fixture
def token_file(tmp_path: Path, token: str) -> Path:
    """The token as the kubelet projects it: a file, with a trailing newline esi-cli must strip."""
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return path


@pytest.fixture
def stub(tmp_path: Path, token: str) -> Iterator[StubFederation]:
    """A stub federation server over TLS holding three secrets of store ``vault-prod``."""
    state, server = start_stub(tmp_path / "stub-tls", token)
    state.secrets = {
        ("vault-prod", "db-credentials"): {"username": "prometheus", "password": secrets.token_urlsafe(18)},
        ("vault-prod", "api-keys"): {"service-a-token": secrets.token_urlsafe(24)},
        ("vault-prod", "team/app.v2"): {"password": secrets.token_urlsafe(12)},
    }
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """Where esi-cli writes relative file paths (the shared in-memory volume in a pod)."""
    path = tmp_path / "secrets"
    path.mkdir()
    return path


@pytest.fixture
def connect_args(stub: StubFederation, token_file: Path, secrets_dir: Path) -> list[str]:
    """Options that point esi-cli at the stub and the test's own directory."""
    return [
        "--server",
        stub.url,
        "--token-file",
        str(token_file),
        "--server-ca-file",
        str(stub.server_ca_file),
        "--dir",
        str(secrets_dir),
        "--timeout",
        "10s",
    ]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``main(argv)`` in this process and capture its exit code, stdout and stderr."""
    return RunCli(capsys)
