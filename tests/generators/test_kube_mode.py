"""Kubernetes mode: generators are watched from cluster-main's API (kmock's emulator), revocable credentials
are recorded in AuthorizedIdentity resources, and the status Lease holder revokes a deleted pod's."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hack.openbao import OpenBao
from hack.postgres import Postgres
from tests.federation.kube.helpers_kube import (
    AUTHORIZATIONS,
    FEDERATIONS,
    SECRETS,
    EmulatedCluster,
    KubeStack,
    kube_stack,
    wait_until,
)
from tests.generators.helpers_dynamic import dynamic_roles
from tests.helpers_stack import CLUSTER, NAMESPACE, SUBJECT, authorization

pytestmark = pytest.mark.slow

GENERATORS = "/apis/generators.external-secrets.io/v1alpha1"
IDENTITIES = "/apis/federation.external-secrets.io/v1alpha1/authorizedidentities"
POD_CHECK_INTERVAL = 0.5


def serve(cluster: EmulatedCluster, resource: str) -> None:
    cluster._call(lambda emulator: emulator.resources.__setitem__(resource, {}))


def secret(namespace: str, name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


@pytest.fixture
def stack(tmp_path: Path, openbao: OpenBao) -> Iterator[KubeStack]:
    with EmulatedCluster() as cluster:
        for plural in ("passwords", "vaultdynamicsecrets"):
            serve(cluster, f"generators.external-secrets.io/v1alpha1/{plural}")
        serve(cluster, "federation.external-secrets.io/v1alpha1/authorizedidentities")
        with kube_stack(tmp_path, cluster=cluster, pod_check_interval=POD_CHECK_INTERVAL) as running:
            cluster.create(
                f"/api/v1/namespaces/{NAMESPACE}/secrets", secret(NAMESPACE, "bao-token", openbao.root_token)
            )
            cluster.create(
                "/api/v1/namespaces/esi-system/secrets", secret("esi-system", "reviewer", "reviewer")
            )
            provider = {
                "server": openbao.address,
                "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}},
            }
            cluster.create(
                f"{GENERATORS}/namespaces/{NAMESPACE}/vaultdynamicsecrets",
                {
                    "apiVersion": "generators.external-secrets.io/v1alpha1",
                    "kind": "VaultDynamicSecret",
                    "metadata": {"name": "db", "namespace": NAMESPACE},
                    "spec": {"provider": provider, "path": "database/creds/app"},
                },
            )
            cluster.create(
                f"{GENERATORS}/namespaces/{NAMESPACE}/passwords",
                {
                    "apiVersion": "generators.external-secrets.io/v1alpha1",
                    "kind": "Password",
                    "metadata": {"name": "pw", "namespace": NAMESPACE},
                    "spec": {"length": 16},
                },
            )
            grant = authorization("allow-generators")
            grant["spec"]["allowedGenerators"] = [
                {"namespace": NAMESPACE, "kind": "VaultDynamicSecret", "name": "db"},
                {"namespace": NAMESPACE, "kind": "Password", "name": "pw"},
            ]
            cluster.create(AUTHORIZATIONS, grant)
            review = {
                "tokenReview": {
                    "tokenSecretRef": {"name": "reviewer", "namespace": "esi-system", "key": "token"}
                }
            }
            cluster.patch(f"{FEDERATIONS}/{CLUSTER}", {"spec": review})
            config = running.app.extensions["esi.service"].holder
            wait_until(
                lambda: len(config.current.generators) == 2 and "reviewer" in str(config.current.secrets), 10
            )
            assert SECRETS
            yield running


def generate(stack: KubeStack, token: str, kind: str, name: str, method: str = "POST") -> requests.Response:
    return requests.request(
        method,
        f"{stack.url}/generators/{NAMESPACE}/{kind}/{name}",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(stack.server_ca_file),
        timeout=20,
    )


def identity_entries(stack: KubeStack) -> list[dict[str, Any]]:
    items = stack.cluster.get(IDENTITIES).get("items") or []
    return [entry for item in items for entry in item["spec"]["issuedCredentials"]]


def test_generators_are_read_from_the_api_server(stack: KubeStack) -> None:
    response = generate(stack, stack.mint(pod_name="web-0"), "Password", "pw")
    assert response.status_code == 200, response.text
    assert len(response.json()["password"]) == 16
    assert identity_entries(stack) == []  # a password has no lease: nothing to record


def test_a_credential_is_recorded_in_an_authorized_identity_and_revoked_by_its_owner(
    stack: KubeStack, postgres: Postgres
) -> None:
    token = stack.mint(pod_name="web-0")
    response = generate(stack, token, "VaultDynamicSecret", "db")
    assert response.status_code == 200, response.text
    made = response.json()
    (entry,) = identity_entries(stack)
    assert entry["sourceRef"] == {
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "VaultDynamicSecret",
        "name": "db",
        "namespace": NAMESPACE,
    }
    uid = stack.issuer.pod_uid(NAMESPACE, "web-0")
    assert entry["workloadBinding"] == {"kind": "Pod", "name": "web-0", "namespace": NAMESPACE, "uid": uid}
    assert entry["lease"]["leaseID"].startswith("database/creds/app/")
    (item,) = stack.cluster.get(IDENTITIES)["items"]
    assert item["spec"]["identitySpec"]["subject"]["oidc"]["subject"] == SUBJECT
    assert generate(stack, token, "VaultDynamicSecret", "db", method="DELETE").status_code == 200
    assert made["username"] not in dynamic_roles(postgres)
    assert identity_entries(stack) == []


def test_the_status_lease_holder_revokes_a_deleted_pods_credential(
    stack: KubeStack, postgres: Postgres
) -> None:
    wait_until(lambda: stack.source.status_writer.lease.held, 10)
    made = generate(stack, stack.mint(pod_name="web-0"), "VaultDynamicSecret", "db").json()
    deleted_at = time.monotonic()
    stack.issuer.delete_pod(NAMESPACE, "web-0")
    while made["username"] in dynamic_roles(postgres):
        assert time.monotonic() - deleted_at < POD_CHECK_INTERVAL + 5, "the role outlived the check interval"
        time.sleep(0.05)
    wait_until(lambda: identity_entries(stack) == [], 5)
