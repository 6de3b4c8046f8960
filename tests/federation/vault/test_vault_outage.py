"""Vault sealed, stopped, silent or restarted: 503 while it lasts, reads again after, same provider."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from federation.errors import StoreError, StoreUnavailable
from federation.settings import Settings
from federation.stores.vault import VaultProvider
from hack.openbao import OpenBao, running_openbao
from hack.ports import free_port
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref, vault_provider

DB = {"username": "prometheus", "password": "outage-test-db-password"}
ROLE_ID = "outage-role-id"
SECRET_ID = "outage-secret-id-0123456789"
APP_ROLE = {"appRole": {"roleId": ROLE_ID, "secretRef": secret_ref("approle", "secret-id")}}


def _seed(bao: OpenBao) -> None:
    """Data, policy and an AppRole with fixed credentials: the same after every restart."""
    root = bao.client()
    root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
    root.sys.create_or_update_policy("reader", 'path "secret/data/*" { capabilities = ["read"] }')
    root.sys.enable_auth_method("approle")
    root.write_data("auth/approle/role/outage", data={"token_policies": ["reader"], "token_ttl": "1h"})
    root.write_data("auth/approle/role/outage/role-id", data={"role_id": ROLE_ID})
    root.write_data("auth/approle/role/outage/custom-secret-id", data={"secret_id": SECRET_ID})


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    with running_openbao(tmp_path_factory.mktemp("bao-outage")) as server:
        _seed(server)
        yield server


@pytest.fixture
def provider(bao: OpenBao) -> VaultProvider:
    source = ConfigSource({"approle": {"secret-id": SECRET_ID}})
    return vault_provider(bao.address, APP_ROLE, source, path="secret")


def test_sealed_vault_is_unavailable_with_retry_after_and_recovers(
    bao: OpenBao, provider: VaultProvider
) -> None:
    assert provider.read("db-credentials") == DB
    bao.seal()
    try:
        with pytest.raises(StoreUnavailable) as sealed:
            provider.read("db-credentials")
    finally:
        bao.unseal()
    assert sealed.value.status == 503
    assert "Retry-After" in sealed.value.headers()
    assert provider.read("db-credentials") == DB


def test_login_while_sealed_is_tried_again_at_once_after_unseal(
    bao: OpenBao, provider: VaultProvider
) -> None:
    bao.seal()
    try:
        with pytest.raises(StoreUnavailable):
            provider.read("db-credentials")
    finally:
        bao.unseal()
    assert provider.read("db-credentials") == DB


def test_vault_that_nobody_listens_for_is_unavailable() -> None:
    source = ConfigSource({"vault-token": {"token": "t"}})
    auth = {"tokenSecretRef": secret_ref("vault-token", "token")}
    provider = vault_provider(f"http://127.0.0.1:{free_port()}", auth, source, path="secret")
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        provider.read("db-credentials")


def test_vault_that_never_answers_is_unavailable_after_the_read_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        source = ConfigSource({"vault-token": {"token": "t"}})
        auth = {"tokenSecretRef": secret_ref("vault-token", "token")}
        settings = Settings(store_connect_timeout=0.5, store_read_timeout=0.5)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        provider = vault_provider(address, auth, source, settings, path="secret")
        with pytest.raises(StoreUnavailable):
            provider.read("db-credentials")


class _DrippingVault(BaseHTTPRequestHandler):
    """Answers every request with a valid KV answer, one byte every 50 ms."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"data": {"data": DB, "metadata": {}}}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        for index, byte in enumerate(head.encode() + body):
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            if index < 4096:
                time.sleep(0.05)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _assert_unavailable_within_3s(address: str) -> None:
    """A read from the vault store at ``address`` (0.5 s connect, 1 s read timeouts) fails as
    unavailable well before a slow server would have let it end."""
    source = ConfigSource({"vault-token": {"token": "t"}})
    auth = {"tokenSecretRef": secret_ref("vault-token", "token")}
    settings = Settings(store_connect_timeout=0.5, store_read_timeout=1.0)
    provider = vault_provider(address, auth, source, settings, path="secret")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        provider.read("db-credentials")
    assert time.monotonic() - started < 3.0


def test_vault_that_drips_its_answer_is_unavailable_at_the_deadline_not_when_it_ends() -> None:
    # Every read gets a byte within the read timeout; only a deadline for the whole call ends it.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DrippingVault)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        _assert_unavailable_within_3s(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def _drip_a_handshake(listener: socket.socket, stop: threading.Event) -> None:
    """Accept, read the ClientHello, then announce a 16 KiB TLS record and send it a byte at a time."""
    listener.settimeout(5)
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.recv(65536)
        try:
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not stop.wait(0.05):
                conn.sendall(b"\x02")
        except OSError:
            return


def test_vault_whose_tls_handshake_drips_is_unavailable_within_the_connect_timeout() -> None:
    # CPython bounds a handshake as a whole by the socket timeout: a byte every 50 ms does not extend it.
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        dripping = threading.Thread(target=_drip_a_handshake, args=(listener, stop), daemon=True)
        dripping.start()
        try:
            _assert_unavailable_within_3s(f"https://127.0.0.1:{listener.getsockname()[1]}")
        finally:
            stop.set()
            dripping.join(timeout=5)


def test_error_messages_never_hold_credentials_or_values(bao: OpenBao) -> None:
    source = ConfigSource({"approle": {"secret-id": "wrong-" + SECRET_ID}})
    provider = vault_provider(bao.address, APP_ROLE, source, path="secret")
    with pytest.raises(StoreError) as failed:
        provider.read("db-credentials")
    text = str(failed.value) + repr(failed.value.__cause__) + repr(failed.value.__context__)
    for forbidden in (SECRET_ID, bao.root_token, DB["password"]):
        assert forbidden not in text


def test_logs_never_hold_tokens_credentials_or_values(
    bao: OpenBao, provider: VaultProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert provider.read("db-credentials") == DB
    first_token = provider._token.value if provider._token else ""
    bao.client().sys.revoke_prefix("auth/approle/")
    assert provider.read("db-credentials") == DB  # a re-login
    second_token = provider._token.value if provider._token else ""
    outside_policy = vault_provider(
        bao.address, APP_ROLE, ConfigSource({"approle": {"secret-id": SECRET_ID}}), path="sys", version="v1"
    )
    with pytest.raises(StoreError, match="permission denied"):
        outside_policy.read("policy/default")
    refused = vault_provider(
        bao.address, APP_ROLE, ConfigSource({"approle": {"secret-id": "wrong-" + SECRET_ID}}), path="secret"
    )
    with pytest.raises(StoreError):
        refused.read("db-credentials")
    assert "logging in again" in caplog.text
    for forbidden in (first_token, second_token, SECRET_ID, bao.root_token, DB["password"]):
        assert forbidden
        assert forbidden not in caplog.text


@pytest.mark.slow
def test_vault_stopped_is_unavailable_and_restarted_serves_the_same_provider(
    bao: OpenBao, provider: VaultProvider
) -> None:
    assert provider.read("db-credentials") == DB
    bao.stop()
    try:
        with pytest.raises(StoreUnavailable):
            provider.read("db-credentials")
    finally:
        bao.start()
        _seed(bao)  # dev mode keeps nothing: the old token is gone, the AppRole is the same
    logins = bao.audit_count("auth/approle/login")
    assert provider.read("db-credentials") == DB
    assert bao.audit_count("auth/approle/login") == logins + 1
