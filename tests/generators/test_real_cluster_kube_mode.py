"""Kubernetes mode against the real kube-apiserver: the server reads a VaultDynamicSecret from the API,
records the pod's credential in an AuthorizedIdentity (the chart's CRD), and the status Lease holder
revokes it when the pod is deleted. The API server is both cluster-main and the client cluster here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hack.kube import ControlPlane
from hack.kube.client import (
    api_client,
    create_object,
    ensure_namespace,
    ensure_service_account,
    request_token,
    wait_established,
)
from hack.openbao import OpenBao
from hack.postgres import Postgres
from tests.generators.helpers_dynamic import create_once, dynamic_roles, reviewer_token, secret_manifest
from tests.helpers_stack import AUDIENCE, authorization
from tests.kube.helpers_plane import (
    ServedFederation,
    install_crds,
    kubernetes_federation,
    serve_federation,
    stored_pod,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAMESPACE, ACCOUNT = "gen-kube-apps", "web"
SYSTEM = "gen-esi-system"
FEDERATION = "gen-client-cluster"
IDENTITIES = "/apis/federation.external-secrets.io/v1alpha1/authorizedidentities"
CHECK_INTERVAL = 1.0

VAULT_DYNAMIC_SECRET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "vaultdynamicsecrets.generators.external-secrets.io"},
    "spec": {
        "group": "generators.external-secrets.io",
        "scope": "Namespaced",
        "names": {
            "kind": "VaultDynamicSecret",
            "listKind": "VaultDynamicSecretList",
            "plural": "vaultdynamicsecrets",
            "singular": "vaultdynamicsecret",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def served(
    kube_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, openbao: OpenBao, postgres: Postgres
) -> Iterator[ServedFederation]:
    install_crds(kube_plane)
    create_once(kube_plane, VAULT_DYNAMIC_SECRET_CRD)
    wait_established(kube_plane, VAULT_DYNAMIC_SECRET_CRD["metadata"]["name"])
    ensure_service_account(kube_plane, NAMESPACE, ACCOUNT)
    ensure_namespace(kube_plane, SYSTEM)
    federation = kubernetes_federation(kube_plane, FEDERATION, [AUDIENCE])
    federation["spec"]["tokenReview"] = {
        "tokenSecretRef": {"name": "gen-reviewer", "namespace": SYSTEM, "key": "token"}
    }
    grant = authorization(
        "gen-allow-db",
        f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}",
        federation=FEDERATION,
        issuer=kube_plane.issuer,
    )
    del grant["spec"]["allowedClusterSecretStores"]
    grant["spec"]["allowedGenerators"] = [
        {"namespace": NAMESPACE, "kind": "VaultDynamicSecret", "name": "db"}
    ]
    provider = {"server": openbao.address, "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}}
    for obj in (
        secret_manifest(SYSTEM, "gen-reviewer", reviewer_token(kube_plane, SYSTEM)),
        secret_manifest(NAMESPACE, "bao-token", openbao.root_token),
        federation,
        grant,
        {
            "apiVersion": "generators.external-secrets.io/v1alpha1",
            "kind": "VaultDynamicSecret",
            "metadata": {"name": "db", "namespace": NAMESPACE},
            "spec": {"provider": provider, "path": "database/creds/app"},
        },
    ):
        create_once(kube_plane, obj)
    directory = tmp_path_factory.mktemp("generators-kube-mode")
    source = ["--kubernetes", "--kubeconfig", str(kube_plane.kubeconfig), "--lease-namespace", SYSTEM]
    with serve_federation(directory, [*source, "--pod-check-interval", f"{CHECK_INTERVAL}s"]) as server:
        yield server


def generate(served: ServedFederation, token: str) -> requests.Response:
    route = f"{served.url}/generators/{NAMESPACE}/VaultDynamicSecret/db"
    for _ in range(50):  # the watch may still be delivering the generator and its grant
        answer = requests.post(
            route, headers={"Authorization": f"Bearer {token}"}, verify=str(served.ca_file), timeout=30
        )
        if answer.status_code not in (403, 404):
            return answer
        time.sleep(0.2)
    return answer


def entries(plane: ControlPlane) -> list[dict[str, Any]]:
    items = api_client(plane).get(IDENTITIES).get("items") or []
    return [entry for item in items for entry in item["spec"]["issuedCredentials"]]


def test_the_lease_holder_revokes_a_deleted_pods_credential_recorded_in_an_authorized_identity(
    served: ServedFederation, kube_plane: ControlPlane, postgres: Postgres
) -> None:
    pod = stored_pod(NAMESPACE, "web-0", ACCOUNT)
    create_object(kube_plane, pod)
    answer = generate(served, request_token(kube_plane, NAMESPACE, ACCOUNT, [AUDIENCE], pod="web-0"))
    status = answer.status_code
    assert status == 200, served.stderr()[-3000:]
    made = answer.json()
    (entry,) = entries(kube_plane)
    uid = api_client(kube_plane).get(f"/api/v1/namespaces/{NAMESPACE}/pods/web-0")["metadata"]["uid"]
    assert entry["workloadBinding"] == {"kind": "Pod", "name": "web-0", "namespace": NAMESPACE, "uid": uid}
    deleted_at = time.monotonic()
    api_client(kube_plane).delete(pod)
    while made["username"] in dynamic_roles(postgres):
        assert time.monotonic() - deleted_at < CHECK_INTERVAL + 15, "the role outlived the check interval"
        time.sleep(0.05)
    print(f"Kubernetes mode: pod deleted -> role gone in {time.monotonic() - deleted_at:.2f} s")
    deadline = time.monotonic() + 10
    while entries(kube_plane):
        assert time.monotonic() < deadline, "the AuthorizedIdentity entry outlived the revocation"
        time.sleep(0.1)
