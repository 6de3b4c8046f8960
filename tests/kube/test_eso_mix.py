"""A cluster-main as ESO users have it, against the real API server: several store providers (some not
served here, some broken), a federation whose key set is broken, one whose keys are published twice,
and one object nested too deeply. The healthy cluster is served on every request throughout."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from federation.app import create_app, stop_app
from federation.settings import Settings
from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from hack.kube import ControlPlane
from hack.kube.client import api_client, create_object, ensure_namespace
from tests.helpers_stack import (
    AUDIENCE,
    NAMESPACE,
    SERVICE_ACCOUNT,
    authorization,
    fake_store,
    serve_over_tls,
    start_cluster,
)
from tests.kube.helpers_plane import install_crds

pytestmark = [pytest.mark.kube, pytest.mark.slow]

STORE_API = "external-secrets.io/v1"
LEASE_NAMESPACE = "iso-mix"
ITEM = {"store": "mix-fake", "key": "db", "property": "password"}


def _store(name: str, provider: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": STORE_API,
        "kind": "ClusterSecretStore",
        "metadata": {"name": name},
        "spec": {"provider": provider},
    }


BROKEN_STORES = [
    _store("mix-aws", {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}),
    _store("mix-gcp", {"gcpsm": {"projectID": "p"}}),
    _store("mix-two", {"fake": {}, "vault": {}}),
    _store(
        "mix-vault-iam",
        {"vault": {"server": "https://127.0.0.1:1", "path": "kv", "auth": {"iam": {"vaultRole": "r"}}}},
    ),
]


def _federation(cluster: ClientClusterIssuer, name: str) -> dict[str, Any]:
    return cluster.federation_manifest(name, [AUDIENCE])


def test_the_healthy_cluster_is_served_throughout(
    kube_plane: ControlPlane, tmp_path: Path, clusters: ExitStack
) -> None:
    plane = kube_plane
    install_crds(plane)
    ensure_namespace(plane, LEASE_NAMESPACE)
    healthy = start_cluster(clusters, "mix-healthy")
    nested = start_cluster(clusters, "mix-nested")
    nested.set_jwks_behaviour(JwksBehaviour(body=b'{"keys": [' + b"[" * 5000 + b"]" * 5000 + b"]}"))
    twice = start_cluster(clusters, "mix-twice")
    created: list[dict[str, Any]] = []

    def create(obj: dict[str, Any]) -> None:
        create_object(plane, obj)
        created.append(obj)

    create(fake_store("mix-fake", {"db": {"password": "mix-password"}}))
    create(_federation(healthy, "mix-healthy"))
    for name, cluster in (("mix-healthy", healthy), ("mix-nested", nested), ("mix-twice", twice)):
        create(
            authorization(f"mix-allow-{name}", federation=name, issuer=cluster.issuer, stores=["mix-fake"])
        )
    app = create_app(
        Settings(
            kubernetes=True,
            kubeconfig=Path(plane.kubeconfig),
            lease_namespace=LEASE_NAMESPACE,
            lease_name="iso-mix-status",
            status_interval=0.5,
            rate_limit=1000.0,
            workers=1,
        )
    )
    server, ca_file = serve_over_tls(app, tmp_path / "tls")
    url = f"https://127.0.0.1:{server.server_port}"

    def fetch(cluster: ClientClusterIssuer, name: str) -> int:
        token = cluster.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])
        answer = requests.post(
            url + "/v1/secrets",
            json={"cluster": name, "secrets": [ITEM]},
            headers={"Authorization": f"Bearer {token}"},
            verify=str(ca_file),
            timeout=10,
        )
        return answer.status_code

    try:
        assert app.extensions["esi.service"].holder.wait_ready(30)
        assert fetch(healthy, "mix-healthy") == 200
        # The rest of cluster-main arrives, one object at a time, while the healthy cluster keeps asking.
        arrivals: list[dict[str, Any]] = [
            *BROKEN_STORES,
            _federation(nested, "mix-nested"),
            _federation(twice, "mix-twice"),
            _federation(twice, "mix-twice-copy"),
        ]
        statuses = []
        for obj in arrivals:
            create(obj)
            time.sleep(0.3)
            statuses.append(fetch(healthy, "mix-healthy"))
        # spec.jwks.keys[] items keep unknown fields: that is where a deep value survives the API server.
        deep = _federation(healthy, "mix-deep")
        deep["spec"]["issuer"] = "https://mix-deep.example"
        deep["spec"]["jwks"] = {"keys": [{"kid": "k", "kty": "EC", "crv": "P-256", "extra": "DEEP"}]}
        body = json.dumps(deep).replace('"DEEP"', "[" * 1500 + "]" * 1500)
        client = api_client(plane)
        answer = client.session.post(
            f"{plane.url}/apis/{deep['apiVersion']}/kubernetesfederations",
            data=body,
            headers={"Content-Type": "application/json"},
            verify=client.verify,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text[:300]
        created.append(deep)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            statuses.append(fetch(healthy, "mix-healthy"))
            time.sleep(0.2)
        assert statuses == [200] * len(statuses)
        config = app.extensions["esi.service"].holder.current
        assert {"mix-fake"} <= set(config.stores)
        # Providers not served are skipped; a served provider with an auth method not served stays (its
        # own requests are refused with the reason, as esi-federation check reports it).
        assert not {"mix-aws", "mix-gcp", "mix-two"} & set(config.stores)
        assert "mix-deep" not in config.federations
        assert fetch(nested, "mix-nested") in (401, 503)
        assert fetch(twice, "mix-twice") == 401
        assert app.extensions["esi.source"].stale_reason() is None
    finally:
        server.shutdown()
        server.server_close()
        stop_app(app)
        for obj in created:
            api_client(plane).delete(obj)
