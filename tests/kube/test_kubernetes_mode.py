"""Kubernetes mode against the real API server, with the identity and RBAC the server chart installs.

cluster-main and client-cluster-alpha are the same API server here: it stores the CRDs, serves the
watches and the Lease to the federation server, and issues the client tokens that it verifies. The
plane is this module's own: the replicas read every KubernetesFederation, and another module's
federation for the same API server would publish the same keys (refused in both, rightly). The two
replicas are two apps in this process, each with its own API client, watches and Lease contender, as
two pods would be; their intervals are shortened (lease 3 s, status every 0.5 s).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from federation.app import create_app, stop_app
from federation.kube.api import KubeApi, KubeApiError
from federation.kube.lease import Lease
from federation.settings import Settings
from hack.kube import ControlPlane
from hack.kube.client import (
    KubeError,
    api_client,
    create_object,
    ensure_namespace,
    ensure_service_account,
    request_token,
    token_kubeconfig,
)
from tests.charts.helpers_rendering import RELEASE_NAMESPACE, SERVER_CHART, one, render
from tests.federation.kube.helpers_kube import AUTHORIZATIONS, FEDERATIONS
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    STORE,
    authorization,
    fake_store,
    seed_values,
    serve_over_tls,
)
from tests.kube.helpers_plane import install_crds, kubernetes_federation, serve_federation

pytestmark = [pytest.mark.kube, pytest.mark.slow]

LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NAMESPACE}/leases"
GRANT = "allow-alpha-monitoring"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
T = TypeVar("T")


@dataclass
class ClusterMain:
    plane: ControlPlane
    kubeconfig: Path
    values: dict[str, str]


@dataclass
class Replica:
    url: str
    ca_file: Path
    app: Any

    def fetch(self, token: str, key: str = "api-keys", prop: str = "service-a-token") -> requests.Response:
        return requests.post(
            self.url + "/v1/secrets",
            json={"secrets": [{"store": STORE, "key": key, "property": prop}]},
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.ca_file),
            timeout=30,
        )

    @property
    def lease(self) -> Lease:
        return self.app.extensions["esi.source"].status_writer.lease


def eventually(probe: Callable[[], T], expected: T, timeout: float = 10.0) -> T:
    """Poll ``probe`` until it returns ``expected`` (or time runs out); its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer == expected or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster_main(own_kube_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> ClusterMain:
    kube_plane = own_kube_plane
    install_crds(kube_plane)
    ensure_namespace(kube_plane, RELEASE_NAMESPACE)
    objects = render(SERVER_CHART)
    for obj in objects:
        if obj["kind"] in RBAC_KINDS:
            try:
                create_object(kube_plane, obj)
            except KubeError as exc:
                if exc.status != 409:
                    raise
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    # The chart's ServiceAccount, with the API server's default audience: what an in-cluster pod has.
    token = request_token(kube_plane, RELEASE_NAMESPACE, account, None, expiration_seconds=3600)
    kubeconfig = token_kubeconfig(kube_plane, token, tmp_path_factory.mktemp("cluster-main") / "kubeconfig")
    values = seed_values()
    ensure_service_account(kube_plane, NAMESPACE, SERVICE_ACCOUNT)
    for obj in (
        fake_store(
            STORE,
            {
                "api-keys": {"service-a-token": values["service-a-token"]},
                "db-credentials": {"password": values["password"]},
            },
        ),
        kubernetes_federation(kube_plane, CLUSTER, [AUDIENCE]),
        authorization(GRANT, issuer=kube_plane.issuer),
    ):
        create_object(kube_plane, obj)
    return ClusterMain(kube_plane, kubeconfig, values)


@pytest.fixture(scope="module")
def replicas(cluster_main: ClusterMain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    started: list[tuple[Replica, Any]] = []
    try:
        for name in ("replica-a", "replica-b"):
            settings = Settings(
                kubernetes=True,
                kubeconfig=cluster_main.kubeconfig,
                lease_namespace=RELEASE_NAMESPACE,
                lease_duration=3.0,
                status_interval=0.5,
                rate_limit=1000.0,
                workers=1,
            )
            app = create_app(settings)
            server, ca_file = serve_over_tls(app, tmp_path_factory.mktemp(name))
            started.append((Replica(f"https://127.0.0.1:{server.server_port}", ca_file, app), server))
            assert app.extensions["esi.service"].holder.wait_ready(30), "the first lists did not complete"
        yield [replica for replica, _ in started]
    finally:
        for replica, server in started:
            server.shutdown()
            server.server_close()
            stop_app(replica.app)


def client_token(plane: ControlPlane) -> str:
    return request_token(plane, NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])


def statuses(
    replicas: list[Replica], token: str, key: str = "api-keys", prop: str = "service-a-token"
) -> list[int]:
    return [replica.fetch(token, key, prop).status_code for replica in replicas]


def test_grants_created_changed_and_deleted_take_effect_on_every_replica(
    cluster_main: ClusterMain, replicas: list[Replica]
) -> None:
    plane = cluster_main.plane
    client = api_client(plane)
    token = client_token(plane)
    assert statuses(replicas, token) == [200, 200]

    client.request(
        "PATCH",
        f"{AUTHORIZATIONS}/{GRANT}",
        {"spec": {"allowedSecrets": ["db-credentials"]}},
        content_type="application/merge-patch+json",
    )
    assert eventually(lambda: statuses(replicas, token), [403, 403], timeout=5) == [403, 403]
    assert statuses(replicas, token, "db-credentials", "password") == [200, 200]

    client.request("DELETE", f"{AUTHORIZATIONS}/{GRANT}")
    assert eventually(lambda: statuses(replicas, token, "db-credentials", "password"), [403, 403], 5) == [
        403,
        403,
    ]

    create_object(plane, authorization(GRANT, issuer=plane.issuer))
    assert eventually(lambda: statuses(replicas, token), [200, 200], timeout=5) == [200, 200]


def test_status_is_written_through_the_status_subresource_and_shown_by_kubectl_get(
    cluster_main: ClusterMain, replicas: list[Replica]
) -> None:
    client = api_client(cluster_main.plane)

    def ready(path: str) -> str | None:
        conditions = client.get(path).get("status", {}).get("conditions", [])
        return next((c["status"] for c in conditions if c["type"] == "Ready"), None)

    assert eventually(lambda: ready(f"{FEDERATIONS}/{CLUSTER}"), "True", timeout=20) == "True"
    assert eventually(lambda: ready(f"{AUTHORIZATIONS}/{GRANT}"), "True", timeout=20) == "True"
    federation = client.get(f"{FEDERATIONS}/{CLUSTER}")
    served_kids = {
        key["kid"]
        for key in client.request("GET", "/openid/v1/jwks", accept="application/jwk-set+json")["keys"]
    }
    assert {key["kid"] for key in federation["status"]["keys"]} == served_kids
    assert federation["status"]["conditions"][0]["reason"] == "KeysLoaded"
    assert federation["status"]["conditions"][0]["observedGeneration"] == federation["metadata"]["generation"]
    fields = federation["metadata"]["managedFields"]
    if cluster_main.plane.minor >= 22:  # managedFields name their subresource since 1.22
        assert [entry for entry in fields if entry.get("subresource") == "status"], fields
    else:
        assert [entry for entry in fields if "f:status" in entry.get("fieldsV1", {})], fields

    # What `kubectl get kubernetesfederations` prints: the API server renders the printer columns.
    table = client.request("GET", FEDERATIONS, accept=TABLE)
    columns = [column["name"] for column in table["columnDefinitions"]]
    row = next(row for row in table["rows"] if row["cells"][0] == CLUSTER)
    assert row["cells"][columns.index("READY")] == "True"
    assert row["cells"][columns.index("URL")] == cluster_main.plane.url


def test_esi_federation_serve_in_kubernetes_mode_runs_as_the_charts_service_account(
    cluster_main: ClusterMain, replicas: list[Replica], tmp_path: Path
) -> None:
    """The command the chart's Deployment runs (gunicorn, two workers), with the chart's identity."""
    args = ["--kubernetes", "--kubeconfig", str(cluster_main.kubeconfig), "--workers", "2"]
    env = {"POD_NAME": "esi-federation-server-0", "POD_NAMESPACE": RELEASE_NAMESPACE}
    token = client_token(cluster_main.plane)

    with serve_federation(tmp_path, args, env) as served:
        answer = served.post_secrets(
            token, [{"store": STORE, "key": "api-keys", "property": "service-a-token"}]
        )

    assert answer.status_code == 200
    assert answer.json()["secrets"][0]["value"] == cluster_main.values["service-a-token"]
    assert token not in served.stderr()


def test_one_replica_holds_the_status_lease(cluster_main: ClusterMain, replicas: list[Replica]) -> None:
    client = api_client(cluster_main.plane)

    def holders() -> list[bool]:
        return [replica.lease.held for replica in replicas]

    assert sorted(eventually(lambda: sorted(holders()), [False, True], timeout=10)) == [False, True]
    holder = client.get(f"{LEASES}/esi-federation-status")["spec"]["holderIdentity"]
    assert holder == next(replica.lease.identity for replica in replicas if replica.lease.held)


class RacingApi:
    """A KubeApi whose GET lets a rival write the Lease before answering: the write that follows is stale."""

    def __init__(self, api: KubeApi, rival: Callable[[], object]) -> None:
        self._api = api
        self._rival = rival
        self.conflicts = 0

    def get(self, path: str, query: Any = None) -> dict[str, Any]:
        answer = self._api.get(path, query)
        self._rival()
        return answer

    def create(self, path: str, body: Any) -> dict[str, Any]:
        return self._api.create(path, body)

    def replace(self, path: str, body: Any) -> dict[str, Any]:
        try:
            return self._api.replace(path, body)
        except KubeApiError as exc:
            self.conflicts += exc.status == 409
            raise


def test_two_contenders_for_an_expired_lease_get_a_real_409_and_one_holder(cluster_main: ClusterMain) -> None:
    # The chart's ServiceAccount may read and renew only its own Lease (the replicas of this module
    # contend for it): the race is run on another Lease, as the admin.
    name = "esi-race-" + secrets.token_hex(3)
    chart_account = KubeApi.connect(cluster_main.kubeconfig)
    with pytest.raises(KubeApiError) as refused:
        chart_account.get(f"{LEASES}/{name}")
    assert refused.value.status == 403
    api = KubeApi.connect(Path(cluster_main.plane.kubeconfig))
    first = Lease(api, RELEASE_NAMESPACE, name, identity="first", duration=3)
    third = Lease(api, RELEASE_NAMESPACE, name, identity="third", duration=3)
    assert first.hold()  # creates it
    time.sleep(3.5)  # first stops renewing: the Lease expires
    racing = RacingApi(api, third.hold)
    second = Lease(racing, RELEASE_NAMESPACE, name, identity="second", duration=3)  # type: ignore[arg-type]

    assert second.hold() is False
    assert racing.conflicts == 1  # the API server refused second's PUT: third wrote in between
    assert third.held is True
    lease = api_client(cluster_main.plane).get(f"{LEASES}/{name}")
    assert lease["spec"]["holderIdentity"] == "third"
    assert lease["spec"]["leaseTransitions"] == 1
    assert first.hold() is False  # third renewed it just now
