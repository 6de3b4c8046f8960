"""A pod of a real kube-apiserver gets its own PostgreSQL login (OpenBao's database engine) from a real
``esi-federation serve`` (gunicorn, TLS); deleting the pod on that API server drops the role within the
pod check interval."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from hack.kube import ControlPlane
from hack.kube.client import api_client, create_object, ensure_service_account, request_token
from hack.openbao import OpenBao
from hack.postgres import Postgres
from tests.generators.helpers_dynamic import dynamic_roles, reviewer_token, secret_manifest
from tests.helpers_stack import AUDIENCE, CLUSTER, authorization
from tests.kube.helpers_plane import (
    ServedFederation,
    kubernetes_federation,
    serve_federation,
    stored_pod,
    write_manifests,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAMESPACE, ACCOUNT = "gen-apps", "web"
REVIEWER_NAMESPACE = "gen-esi-system"
CHECK_INTERVAL = 1.0
DB_ROUTE = f"/generators/{NAMESPACE}/VaultDynamicSecret/db"


@pytest.fixture(scope="module")
def served(
    kube_plane: ControlPlane,
    tmp_path_factory: pytest.TempPathFactory,
    openbao: OpenBao,
    postgres: Postgres,
) -> Iterator[ServedFederation]:
    ensure_service_account(kube_plane, NAMESPACE, ACCOUNT)
    directory = tmp_path_factory.mktemp("generators-real")
    federation = kubernetes_federation(kube_plane, CLUSTER, [AUDIENCE])
    federation["spec"]["tokenReview"] = {
        "tokenSecretRef": {"name": "reviewer", "namespace": REVIEWER_NAMESPACE, "key": "token"}
    }
    grant = authorization(
        "allow-db", f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}", issuer=kube_plane.issuer
    )
    grant["spec"]["allowedGenerators"] = [
        {"namespace": NAMESPACE, "kind": "VaultDynamicSecret", "name": "db"}
    ]
    provider = {"server": openbao.address, "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}}
    manifests = write_manifests(
        directory / "manifests",
        [
            federation,
            grant,
            secret_manifest(REVIEWER_NAMESPACE, "reviewer", reviewer_token(kube_plane, REVIEWER_NAMESPACE)),
            secret_manifest(NAMESPACE, "bao-token", openbao.root_token),
            {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "VaultDynamicSecret",
                "metadata": {"name": "db", "namespace": NAMESPACE},
                "spec": {"provider": provider, "path": "database/creds/app"},
            },
        ],
    )
    source = ["--manifests", str(manifests), "--state-dir", str(directory / "state")]
    with serve_federation(directory, [*source, "--pod-check-interval", f"{CHECK_INTERVAL}s"]) as server:
        yield server


def pod_token(plane: ControlPlane, pod: str) -> str:
    create_object(plane, stored_pod(NAMESPACE, pod, ACCOUNT))
    return request_token(plane, NAMESPACE, ACCOUNT, [AUDIENCE], pod=pod)


def generate(served: ServedFederation, token: str, method: str = "POST") -> requests.Response:
    return requests.request(
        method,
        served.url + DB_ROUTE,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(served.ca_file),
        timeout=30,
    )


def test_a_pod_logs_in_with_its_own_role_until_it_is_deleted(
    served: ServedFederation, kube_plane: ControlPlane, postgres: Postgres
) -> None:
    token = pod_token(kube_plane, "web-0")
    answer = generate(served, token)
    status = answer.status_code
    assert status == 200, served.stderr()[-3000:]
    made = answer.json()
    assert (
        postgres.psql("SELECT current_user", user=made["username"], password=made["password"])
        == made["username"]
    )
    pod = stored_pod(NAMESPACE, "web-0", ACCOUNT)
    deleted_at = time.monotonic()
    api_client(kube_plane).delete(pod)
    while made["username"] in dynamic_roles(postgres):
        assert time.monotonic() - deleted_at < CHECK_INTERVAL + 10, "the role outlived the check interval"
        time.sleep(0.05)
    print(f"pod deleted on kube-apiserver -> role gone in {time.monotonic() - deleted_at:.2f} s")
    # The deleted pod's token is refused once the server's TokenReview cache (10 s) has passed; until
    # then a credential it gets is revoked at the next pod check all the same.
    late = generate(served, token)
    status = late.status_code
    assert status in (200, 401)
    if status == 200:
        username = late.json()["username"]
        deadline = time.monotonic() + CHECK_INTERVAL + 10
        while username in dynamic_roles(postgres):
            assert time.monotonic() < deadline, "a deleted pod's late credential outlived the check interval"
            time.sleep(0.05)


def test_issuance_through_gunicorn(
    served: ServedFederation, kube_plane: ControlPlane, postgres: Postgres
) -> None:
    token = pod_token(kube_plane, "web-1")
    session = requests.Session()
    latencies, users = [], []
    for _ in range(20):
        started = time.perf_counter()
        answer = session.post(
            served.url + DB_ROUTE,
            headers={"Authorization": f"Bearer {token}"},
            verify=str(served.ca_file),
            timeout=30,
        )
        latencies.append(time.perf_counter() - started)
        status = answer.status_code
        assert status == 200
        users.append(answer.json()["username"])
    latencies.sort()
    print(f"issuance through gunicorn: p50 {latencies[10] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    revoked = generate(served, token, method="DELETE").status_code
    assert revoked == 200
    assert not set(users) & dynamic_roles(postgres)  # the pod's 20 credentials, revoked at once
