"""Kubernetes mode against the real API server: one bad object, or one stalled connection, never
freezes the configuration of everyone else.

- a KubernetesFederation nested 1500 deep (``spec.jwks.keys[]`` keeps unknown fields) is refused alone:
  the watch goes on, later changes apply, a fresh source becomes ready, the refusal is counted;
- a watch stream the network stalls (a half-dead connection) is replaced within the documented bound;
- a ClusterSecretStore of a provider not served (aws) is skipped; the others load.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.config.holder import ConfigHolder
from federation.kube import api as kube_api
from federation.kube import source as kube_source
from federation.kube import watch as kube_watch
from federation.kube.api import KubeApi
from federation.kube.source import KubernetesSource
from federation.metrics import Metrics
from federation.settings import Settings
from hack.kube import ControlPlane
from hack.kube.client import api_client, create_object, ensure_namespace
from tests.helpers_stack import authorization
from tests.kube.helpers_plane import install_crds

pytestmark = [pytest.mark.kube, pytest.mark.xdist_group("kube_isolation")]

FEDERATION_API = "identity.federation.external-secrets.io/v1alpha1"
DEEP = 1500


def _create_deep(plane: ControlPlane, obj: dict[str, Any]) -> None:
    """Create ``obj`` with its ``"DEEP"`` string replaced by an array nested ``DEEP`` levels (sent as
    text: Python's own JSON encoder cannot write it either)."""
    body = json.dumps(obj).replace('"DEEP"', "[" * DEEP + "]" * DEEP)
    client = api_client(plane)
    answer = client.session.post(
        f"{plane.url}/apis/{FEDERATION_API}/kubernetesfederations",
        data=body,
        headers={"Content-Type": "application/json"},
        verify=client.verify,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text[:300]


def _federation(name: str, **extra_key: Any) -> dict[str, Any]:
    key = {"kid": f"{name}-k", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", **extra_key}
    return {
        "apiVersion": FEDERATION_API,
        "kind": "KubernetesFederation",
        "metadata": {"name": name},
        "spec": {
            "url": "https://127.0.0.1:1",
            "issuer": f"https://{name}.example",
            "jwks": {"keys": [key]},
        },
    }


def _wait(condition: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"the condition did not hold within {timeout} s")


@pytest.fixture(scope="module")
def plane(kube_plane: ControlPlane) -> Iterator[ControlPlane]:
    install_crds(kube_plane)
    yield kube_plane
    # The plane is shared by the session: leave no broken object to the modules that follow.
    client = api_client(kube_plane)
    for name in ("iso-deep", "iso-after", "iso-stalled", "iso-outside", "iso-inside"):
        client.delete(_federation(name))
    client.delete(
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": "iso-aws"},
        }
    )
    client.delete(authorization("iso-grant"))


def _source(kubeconfig: Path) -> tuple[KubernetesSource, ConfigHolder, Metrics]:
    metrics = Metrics()
    holder = ConfigHolder(metrics)
    source = KubernetesSource(Settings(kubernetes=True, kubeconfig=kubeconfig), holder)
    source.start()
    assert holder.wait_ready(30), "the first lists did not complete"
    return source, holder, metrics


@pytest.fixture
def served(plane: ControlPlane) -> Iterator[tuple[KubernetesSource, ConfigHolder, Metrics]]:
    source, holder, metrics = _source(Path(plane.kubeconfig))
    try:
        yield source, holder, metrics
    finally:
        source.stop()


def test_a_deeply_nested_federation_is_refused_alone_and_the_watch_goes_on(
    plane: ControlPlane, served: tuple[KubernetesSource, ConfigHolder, Metrics]
) -> None:
    source, holder, metrics = served
    _create_deep(plane, _federation("iso-deep", extra="DEEP"))
    create_object(plane, _federation("iso-after"))
    _wait(lambda: "iso-after" in holder.current.federations, 10)
    assert "iso-deep" not in holder.current.federations
    assert metrics.kube_objects_refused.labels("KubernetesFederation")._value.get() >= 1
    assert source.stale_reason() is None
    # A server started while the object exists lists it (refusing it) and becomes ready.
    fresh, fresh_holder, _ = _source(Path(plane.kubeconfig))
    try:
        assert "iso-after" in fresh_holder.current.federations
        assert "iso-deep" not in fresh_holder.current.federations
    finally:
        fresh.stop()


def test_a_store_of_a_provider_not_served_is_skipped(
    plane: ControlPlane, served: tuple[KubernetesSource, ConfigHolder, Metrics]
) -> None:
    _, holder, _ = served
    aws = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "iso-aws"},
        "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}},
    }
    create_object(plane, aws)
    grant = authorization("iso-grant", federation="iso-after", issuer="https://iso-after.example")
    create_object(plane, grant)
    _wait(lambda: any(g.name == "iso-grant" for g in holder.current.grants), 10)
    assert "iso-aws" not in holder.current.stores
    assert any("iso-aws" in reason for reason in holder.current.ignored)
    # A server started while the store exists becomes ready with everything else.
    fresh, fresh_holder, fresh_metrics = _source(Path(plane.kubeconfig))
    try:
        assert any(g.name == "iso-grant" for g in fresh_holder.current.grants)
        assert fresh_metrics.config_ignored._value.get() >= 1
    finally:
        fresh.stop()


class _FreezingProxy:
    """A TCP forwarder to the API server whose open connections can be frozen: bytes stop flowing both
    ways but nothing is closed, as with a dropped NAT entry. Connections opened later flow again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._frozen: set[int] = set()
        self._connections: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        with self._lock:
            self._frozen = {id(pair) for pair in self._connections}

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for client, upstream in self._connections:
                client.close()
                upstream.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            pair = (client, upstream)
            with self._lock:
                self._connections.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(
        self, pair: tuple[socket.socket, socket.socket], source: socket.socket, sink: socket.socket
    ) -> None:
        try:
            while data := source.recv(65536):
                while id(pair) in self._frozen:
                    time.sleep(0.2)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: so does the connection (the other pump then ends on its closed socket).
            for end in pair:
                end.close()


def _proxied(plane: ControlPlane, tmp_path: Path) -> tuple[_FreezingProxy, Path]:
    """A proxy to ``plane`` and a kubeconfig that goes through it."""
    host, port = plane.url.removeprefix("https://").rsplit(":", 1)
    proxy = _FreezingProxy((host, int(port)))
    config = yaml.safe_load(Path(plane.kubeconfig).read_text(encoding="utf-8"))
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{host}:{proxy.port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")
    return proxy, kubeconfig


def test_a_stalled_watch_is_replaced_within_the_bound(
    plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short server-side watch timeouts keep the test short; the mechanism is the one serving uses.
    monkeypatch.setattr(kube_watch, "WATCH_TIMEOUT_SECONDS", 2)
    monkeypatch.setattr(kube_api, "WATCH_READ_GRACE", 2.0)
    proxy, kubeconfig = _proxied(plane, tmp_path)
    source, holder, _ = _source(kubeconfig)
    try:
        create_object(plane, _federation("iso-stalled"))
        _wait(lambda: "iso-stalled" in holder.current.federations, 10)
        proxy.freeze()
        api_client(plane).delete(_federation("iso-stalled"))
        took = _wait(lambda: "iso-stalled" not in holder.current.federations, 20)
        assert took < 2 + 2.0 + 5, took  # server timeout + read grace + a reconnect and list
    finally:
        source.stop()
        proxy.close()


def test_secrets_are_listed_in_pages_and_only_referenced_ones_are_kept(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_watch, "LIST_PAGE_SIZE", 2)
    ensure_namespace(plane, "iso-crowd")
    for index in range(5):
        create_object(
            plane,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"unrelated-{index}", "namespace": "iso-crowd"},
                "stringData": {"value": "x" * 1000},
            },
        )
    api = KubeApi.connect(Path(plane.kubeconfig))
    asked: list[tuple[str, dict[str, str]]] = []
    original = api.get

    def recording_get(path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        asked.append((path, dict(query or {})))
        return original(path, query)

    monkeypatch.setattr(api, "get", recording_get)
    holder = ConfigHolder(Metrics())
    source = KubernetesSource(Settings(kubernetes=True, kubeconfig=Path(plane.kubeconfig)), holder, api=api)
    source.start()
    try:
        assert holder.wait_ready(30)
        secret_lists = [query for path, query in asked if path == "/api/v1/secrets"]
        assert len(secret_lists) >= 3  # at least 5 Secrets, 2 a page
        assert all(query.get("limit") == "2" for query in secret_lists)
        assert not [key for key in source.observed("Secret") if key[0] == "iso-crowd"]
    finally:
        source.stop()


def test_a_federation_may_name_secrets_only_in_the_allowed_namespaces(
    plane: ControlPlane, served: tuple[KubernetesSource, ConfigHolder, Metrics]
) -> None:
    _, holder, _ = served
    outside = _federation("iso-outside")
    outside["spec"]["tokenSecretRef"] = {
        "name": "cluster-admin-token",
        "namespace": "kube-system",
        "key": "token",
    }
    inside = _federation("iso-inside")
    inside["spec"]["tokenSecretRef"] = {"name": "jwks-reader", "namespace": "default", "key": "token"}
    create_object(plane, outside)
    create_object(plane, inside)
    _wait(lambda: "iso-inside" in holder.current.federations, 10)
    assert "iso-outside" not in holder.current.federations
    reasons = [
        reason for reason in holder.current.ignored if reason.startswith("KubernetesFederation iso-outside:")
    ]
    assert len(reasons) == 1
    assert "'kube-system'" in reasons[0]
    assert "--federation-secret-namespaces" in reasons[0]


def test_a_source_cut_off_from_the_api_server_says_its_configuration_is_stale(
    plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_watch, "WATCH_TIMEOUT_SECONDS", 2)
    monkeypatch.setattr(kube_api, "WATCH_READ_GRACE", 1.0)
    monkeypatch.setattr(kube_source, "STALE_AFTER_SECONDS", 4.0)
    proxy, kubeconfig = _proxied(plane, tmp_path)
    source, _, _ = _source(kubeconfig)
    try:
        assert source.stale_reason() is None
        proxy.close()  # the API server is unreachable from here on
        _wait(lambda: source.stale_reason() is not None, 20)
        assert "not confirmed by the API server" in str(source.stale_reason())
    finally:
        source.stop()
