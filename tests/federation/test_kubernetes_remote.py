"""The ``kubernetes`` provider reading another cluster: TLS trust, bearer token and client certificate,
and what each answer of the API server becomes. The other cluster is a small HTTPS stand-in that checks
credentials the way kube-apiserver does (401 without valid ones, 403 outside the granted namespace)."""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.errors import SecretNotFound, StoreError, StoreUnavailable
from federation.settings import Settings
from federation.stores import kubernetes
from hack.certs import create_ca, write_tls_files
from tests.helpers_http import send_json

TOKEN = "remote-reader-token"
DB = {"password": "remote-db-password", "username": "reader"}


@dataclass
class RemoteCluster:
    """The stand-in and what tests need to reach it."""

    url: str
    ca_pem: bytes
    client_cert: bytes
    client_key: bytes
    other_key: bytes
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteCluster]:
    directory = tmp_path_factory.mktemp("remote-cluster")
    server_ca, client_ca = create_ca("remote cluster CA"), create_ca("remote client CA")
    files = write_tls_files(directory, server_ca, server_ca.issue(["127.0.0.1"]), name="apiserver")
    client = client_ca.issue([], common_name="reader", client=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert_file, files.key_file)
    context.load_verify_locations(cadata=client_ca.cert_pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    seen: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    other = client_ca.issue([], common_name="other", client=True)
    try:
        yield RemoteCluster(
            f"https://127.0.0.1:{server.server_address[1]}",
            server_ca.cert_pem,
            client.cert_pem,
            client.key_pem,
            other.key_pem,
            seen,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _handler(seen: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            common_name = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
            seen.append(
                {"path": self.path, "authorization": self.headers.get("Authorization"), "cn": common_name}
            )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}" and common_name != "reader":
                return self._reply(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
            parts = self.path.strip("/").split("/")
            if parts[:3] != ["api", "v1", "namespaces"] or len(parts) != 6 or parts[4] != "secrets":
                return self._reply(404, {"kind": "Status", "code": 404})
            if parts[3] != "apps":
                return self._reply(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
            if parts[5] != "db-credentials":
                return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
            data = {k: base64.b64encode(v.encode()).decode() for k, v in DB.items()}
            return self._reply(200, {"kind": "Secret", "apiVersion": "v1", "data": data})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            send_json(self, status, body)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent."""

    return Handler


def _snapshot(remote: RemoteCluster, **extra: bytes) -> Configuration:
    data = {
        "token": TOKEN.encode(),
        "tls.crt": remote.client_cert,
        "tls.key": remote.client_key,
        "other.key": remote.other_key,
        "ca.crt": remote.ca_pem,
        "wrong": b"not-the-reader-token",
        **extra,
    }
    secret = KubeSecret("esi-system", "remote-creds", data)
    return Configuration(secrets={("esi-system", "remote-creds"): secret}, source="test")


def _ref(key: str) -> dict[str, str]:
    return {"name": "remote-creds", "namespace": "esi-system", "key": key}


def _provider(remote: RemoteCluster, auth: dict[str, Any], namespace: str = "apps", **server: Any) -> Any:
    spec = {
        "remoteNamespace": namespace,
        "server": {"url": remote.url, "caBundle": base64.b64encode(remote.ca_pem).decode(), **server},
        "auth": auth,
    }
    return kubernetes.build(StoreConfig("remote", "kubernetes", spec), _snapshot(remote), Settings())


TOKEN_AUTH = {"token": {"bearerToken": _ref("token")}}
CERT_AUTH = {"cert": {"clientCert": _ref("tls.crt"), "clientKey": _ref("tls.key")}}


def test_a_bearer_token_reads_the_remote_secret(remote: RemoteCluster) -> None:
    assert _provider(remote, TOKEN_AUTH).read("db-credentials") == DB
    assert remote.seen[-1]["path"] == "/api/v1/namespaces/apps/secrets/db-credentials"
    assert remote.seen[-1]["authorization"] == f"Bearer {TOKEN}"


def test_a_client_certificate_reads_the_remote_secret(remote: RemoteCluster) -> None:
    assert _provider(remote, CERT_AUTH).read("db-credentials") == DB
    assert remote.seen[-1]["cn"] == "reader"
    assert remote.seen[-1]["authorization"] is None


def test_a_ca_provider_configmap_is_trusted(remote: RemoteCluster) -> None:
    ca = {"type": "ConfigMap", "name": "remote-ca", "namespace": "esi-system", "key": "ca.crt"}
    spec = {"remoteNamespace": "apps", "server": {"url": remote.url, "caProvider": ca}, "auth": TOKEN_AUTH}
    snapshot = _snapshot(remote)
    config_map = KubeSecret("esi-system", "remote-ca", {"ca.crt": remote.ca_pem})
    snapshot = Configuration(secrets=snapshot.secrets, config_maps={("esi-system", "remote-ca"): config_map})
    provider = kubernetes.build(StoreConfig("remote", "kubernetes", spec), snapshot, Settings())
    assert provider.read("db-credentials") == DB


def test_a_missing_remote_secret_is_not_found(remote: RemoteCluster) -> None:
    with pytest.raises(SecretNotFound):
        _provider(remote, TOKEN_AUTH).read("absent")


@pytest.mark.parametrize("key", ["../secrets/db-credentials", "Db", "a/b"])
def test_a_key_that_is_not_a_secret_name_never_reaches_the_cluster(remote: RemoteCluster, key: str) -> None:
    before = len(remote.seen)
    with pytest.raises(SecretNotFound, match="is not a Secret name"):
        _provider(remote, TOKEN_AUTH).read(key)
    assert len(remote.seen) == before


def test_refused_credentials_and_namespaces_are_store_errors_without_the_token(remote: RemoteCluster) -> None:
    wrong = {"token": {"bearerToken": _ref("wrong")}}
    with pytest.raises(StoreError, match="HTTP 401") as refused:
        _provider(remote, wrong).read("db-credentials")
    assert "not-the-reader-token" not in str(refused.value)
    several_lines = {"token": {"bearerToken": _ref("ca.crt")}}
    with pytest.raises(StoreError, match="bearer token is not one line of printable text") as refused:
        _provider(remote, several_lines).read("db-credentials")
    assert "BEGIN" not in str(refused.value)
    with pytest.raises(StoreError, match="HTTP 403"):
        _provider(remote, TOKEN_AUTH, namespace="kube-system").read("db-credentials")


def test_a_server_certificate_of_another_ca_is_refused(remote: RemoteCluster, tmp_path: Path) -> None:
    other = base64.b64encode(create_ca("another CA").cert_pem).decode()
    with pytest.raises(StoreError, match="TLS connection failed"):
        _provider(remote, TOKEN_AUTH, caBundle=other).read("db-credentials")


def test_a_cluster_that_does_not_answer_is_unavailable(remote: RemoteCluster) -> None:
    spec = {"server": {"url": "https://127.0.0.1:1"}, "auth": TOKEN_AUTH}
    provider = kubernetes.build(StoreConfig("remote", "kubernetes", spec), _snapshot(remote), Settings())
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        provider.read("db-credentials")


def test_a_client_key_that_is_not_the_certificates_is_refused_by_check(remote: RemoteCluster) -> None:
    auth = {"cert": {"clientCert": _ref("tls.crt"), "clientKey": _ref("other.key")}}
    spec = {"server": {"url": remote.url}, "auth": auth}
    with pytest.raises(StoreError, match="client certificate and key do not load"):
        kubernetes.validate(StoreConfig("remote", "kubernetes", spec), _snapshot(remote), Settings())
