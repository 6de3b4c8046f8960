"""One federation's broken key material never breaks another's: a key set nested too deeply, a static
``spec.jwks`` with keys PyJWT cannot load, a garbled ``caBundle`` that still carries a PEM header. The
broken federation's own tokens are refused; the healthy cluster keeps being served; the broken key set
is not fetched again on every request."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from tests.federation.helpers_requests import post_secrets, register
from tests.helpers_stack import (
    AUDIENCE,
    NAMESPACE,
    SERVICE_ACCOUNT,
    FederationStack,
    authorization,
    running_stack,
    start_cluster,
)

pytestmark = pytest.mark.xdist_group("tenant_isolation")

NESTED_JWKS = b'{"keys": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
SHORT = base64.urlsafe_b64encode(b"\x01\x02").rstrip(b"=").decode()
UNLOADABLE_KEYS = [
    {"kid": "short-ec", "kty": "EC", "crv": "P-256", "x": SHORT, "y": SHORT, "use": "sig"},
    {"kid": "rsa-without-n", "kty": "RSA", "e": "AQAB", "use": "sig"},
]
GARBLED_CA = "-----BEGIN CERTIFICATE-----\nnot base64 at all !!\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    with running_stack(tmp_path_factory.mktemp("isolation")) as running:
        yield running


def _register(stack: FederationStack, cluster: ClientClusterIssuer, name: str, **spec: Any) -> None:
    manifest = cluster.federation_manifest(name, [AUDIENCE])
    manifest["spec"].update(spec)
    register(
        stack,
        f"{name}.yaml",
        manifest,
        authorization(f"allow-{name}", federation=name, issuer=cluster.issuer),
    )


def _healthy_and_broken(stack: FederationStack, broken: ClientClusterIssuer) -> tuple[list[int], list[int]]:
    healthy = [post_secrets(stack, stack.mint()).status_code for _ in range(5)]
    refused = [
        post_secrets(stack, broken.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])).status_code for _ in range(5)
    ]
    return healthy, refused


def test_a_key_set_nested_too_deeply_breaks_only_its_own_federation(
    stack: FederationStack, clusters: ExitStack
) -> None:
    broken = start_cluster(clusters, "nested")
    broken.set_jwks_behaviour(JwksBehaviour(body=NESTED_JWKS))
    _register(stack, broken, "nested")
    healthy, refused = _healthy_and_broken(stack, broken)
    assert healthy == [200] * 5
    assert all(status in (401, 503) for status in refused), refused
    # Failed fetches are rate-limited like any other: not one fetch per request.
    assert broken.jwks_requests <= 2


def test_a_static_key_set_with_unloadable_keys_breaks_only_its_own_federation(
    stack: FederationStack, clusters: ExitStack
) -> None:
    broken = start_cluster(clusters, "static-broken")
    _register(stack, broken, "static-broken", jwks={"keys": UNLOADABLE_KEYS})
    healthy, refused = _healthy_and_broken(stack, broken)
    assert healthy == [200] * 5
    assert refused == [401] * 5
    assert broken.jwks_requests == 0


def test_a_garbled_ca_bundle_breaks_only_its_own_federation(
    stack: FederationStack, clusters: ExitStack
) -> None:
    broken = start_cluster(clusters, "garbled-ca")
    _register(stack, broken, "garbled-ca", caBundle=GARBLED_CA)
    healthy, refused = _healthy_and_broken(stack, broken)
    assert healthy == [200] * 5
    assert all(status in (401, 503) for status in refused), refused
    assert broken.jwks_requests == 0  # the TLS context could not be built: nothing was sent


def test_the_logs_name_the_broken_federation_only(
    stack: FederationStack, clusters: ExitStack, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    broken = start_cluster(clusters, "nested-logged")
    broken.set_jwks_behaviour(JwksBehaviour(body=NESTED_JWKS))
    _register(stack, broken, "nested-logged")
    with caplog.at_level("WARNING"):
        post_secrets(stack, broken.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE]))
    reasons = [
        getattr(record, "reason", "")
        for record in caplog.records
        if getattr(record, "federation", "") == "nested-logged"
    ]
    assert any("nested too deeply" in reason for reason in reasons), reasons


def test_a_store_of_a_provider_not_served_is_skipped_not_the_whole_configuration(
    stack: FederationStack, caplog: pytest.LogCaptureFixture
) -> None:
    aws = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "aws-prod"},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}},
    }
    with caplog.at_level("WARNING"):
        register(stack, "aws.yaml", aws)
    config = stack.app.extensions["esi.service"].holder.current
    assert "aws-prod" not in config.stores
    assert any("aws-prod" in reason and "skipped" in reason for reason in config.ignored)
    assert post_secrets(stack, stack.mint()).status_code == 200
    metrics = requests.get(stack.url + "/metrics", verify=str(stack.server_ca_file), timeout=10).text
    assert "esi_federation_config_ignored_resources 1.0" in metrics
    stack.write("aws.yaml")
