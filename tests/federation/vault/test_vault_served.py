"""End to end: /v1/secrets of the served app reads a vault store backed by a real OpenBao."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.openbao import OpenBao, make_tls, running_openbao
from tests.federation.helpers_requests import PASSWORD, SERVICE_A, USERNAME, post_secrets
from tests.helpers_stack import STORE, FederationStack

pytestmark = pytest.mark.slow


@pytest.fixture
def vault_stack(
    federation_stack: FederationStack, tmp_path: Path
) -> Iterator[tuple[FederationStack, OpenBao]]:
    """The stack with vault-prod replaced by a vault store over TLS, holding the stack's values."""
    stack = federation_stack
    directory = tmp_path / "openbao"
    directory.mkdir()
    tls = make_tls(directory, "openbao")
    with running_openbao(directory, tls=tls) as bao:
        root = bao.client()
        values = stack.values
        db = {"username": values["username"], "password": values["password"]}
        root.secrets.kv.v2.create_or_update_secret("db-credentials", db, mount_point="secret")
        api_keys = {"service-a-token": values["service-a-token"], "rotation": 3}
        root.secrets.kv.v2.create_or_update_secret("api-keys", api_keys, mount_point="secret")
        root.sys.create_or_update_policy("federation", 'path "secret/data/*" { capabilities = ["read"] }')
        token = root.auth.token.create(policies=["federation"], ttl="1h")["auth"]["client_token"]
        since = stack.reload_count()
        stack.write(
            "vault-prod.yaml",
            {
                "apiVersion": "external-secrets.io/v1",
                "kind": "ClusterSecretStore",
                "metadata": {"name": STORE},
                "spec": {
                    "provider": {
                        "vault": {
                            "server": bao.tls_address,
                            "path": "secret",
                            "version": "v2",
                            "caBundle": base64.b64encode(tls.ca_pem).decode(),
                            "auth": {
                                "tokenSecretRef": {
                                    "name": "vault-token",
                                    "namespace": "esi-system",
                                    "key": "token",
                                }
                            },
                        }
                    }
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-token", "namespace": "esi-system"},
                "stringData": {"token": token},
            },
        )
        stack.wait_for_reload(since)
        yield stack, bao


def test_v1_secrets_reads_openbao_once_per_key_and_answers_in_order(
    vault_stack: tuple[FederationStack, OpenBao],
) -> None:
    stack, bao = vault_stack
    response = post_secrets(stack, stack.mint(), secrets=[SERVICE_A, PASSWORD, USERNAME])
    assert response.status_code == 200, response.text
    assert [item["value"] for item in response.json()["secrets"]] == [
        stack.values["service-a-token"],
        stack.values["password"],
        stack.values["username"],
    ]
    assert bao.audit_count("secret/data/db-credentials", "read") == 1
    rotation = {"store": STORE, "key": "api-keys", "property": "rotation"}
    response = post_secrets(stack, stack.mint(), secrets=[rotation])
    assert response.json()["secrets"][0]["value"] == "3"


def test_v1_secrets_answers_404_for_a_key_openbao_lacks(vault_stack: tuple[FederationStack, OpenBao]) -> None:
    stack, _ = vault_stack
    missing = {"store": STORE, "key": "no-such-key", "property": "password"}
    response = post_secrets(stack, stack.mint(), secrets=[PASSWORD, missing])
    assert response.status_code == 404
    assert "no-such-key" in response.json()["detail"]
    assert stack.values["password"] not in response.text


def test_v1_secrets_answers_503_while_openbao_is_sealed(vault_stack: tuple[FederationStack, OpenBao]) -> None:
    stack, bao = vault_stack
    bao.seal()
    try:
        response = post_secrets(stack, stack.mint(), secrets=[PASSWORD])
    finally:
        bao.unseal()
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert post_secrets(stack, stack.mint(), secrets=[PASSWORD]).status_code == 200
