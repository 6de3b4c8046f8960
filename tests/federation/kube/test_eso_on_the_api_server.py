"""ESO store shapes that need a Kubernetes API server, against the real kube-apiserver of ``kube_plane``:

- vault ``auth.kubernetes.serviceAccountRef`` and ``auth.jwt.kubernetesServiceAccountToken``: the server
  mints the ServiceAccount's token through the plane's TokenRequest API (Kubernetes mode) and logs in to
  a real OpenBao, which checks it with the plane's TokenReview (kubernetes) or its signing keys (jwt);
- the ``kubernetes`` provider with the plane as *another* cluster: ``server.url`` + ``caBundle``, and
  ``auth.token``, ``auth.cert`` and ``auth.serviceAccount``; the plane's RBAC decides what each may read.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.errors import StoreError
from federation.settings import Settings
from federation.stores import kubernetes
from hack.kube import ControlPlane
from hack.kube.client import create_object, ensure_service_account, request_token
from hack.openbao import OpenBao, running_openbao
from tests.federation.vault.helpers_vault import ConfigSource, vault_provider

pytestmark = [pytest.mark.kube, pytest.mark.slow]

VAULT_NS, READER, REVIEWER = "eso-vault", "vault-reader", "vault-reviewer"
REMOTE_NS, SECRET_READER = "eso-remote", "secret-reader"
DB = {"password": "kube-plane-db-password"}
TOKEN_SETTINGS = {"token_policies": ["federation"], "token_ttl": "60s", "token_max_ttl": "10m"}


def _grant(plane: ControlPlane, namespace: str, account: str, role: str, kind: str = "ClusterRole") -> None:
    binding_kind = "ClusterRoleBinding" if kind == "ClusterRole" and namespace == "" else "RoleBinding"
    metadata: dict[str, str] = {"name": f"{account}-{role}".replace(":", "-")}
    if binding_kind == "RoleBinding":
        metadata["namespace"] = namespace
    create_object(
        plane,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": binding_kind,
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace or VAULT_NS}],
        },
    )


def _public_pems(plane: ControlPlane) -> list[str]:
    """The plane's ServiceAccount signing keys, PEM, as Vault's jwt method takes them."""
    answer = requests.get(
        plane.url + "/openid/v1/jwks",
        headers={"Accept": "application/jwk-set+json"},
        verify=str(plane.ca_file),
        cert=plane.admin_cert,
        timeout=10,
    )
    answer.raise_for_status()
    keys = answer.json()["keys"]
    return [
        jwt.PyJWK(key)
        .key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        for key in keys
    ]


@dataclass
class Vault:
    bao: OpenBao
    settings: Settings

    def logins(self, mount: str) -> int:
        return self.bao.audit_count(f"auth/{mount}/login")


@pytest.fixture(scope="module")
def vault(kube_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    ensure_service_account(kube_plane, VAULT_NS, READER)
    ensure_service_account(kube_plane, VAULT_NS, REVIEWER)
    _grant(kube_plane, "", REVIEWER, "system:auth-delegator")
    reviewer_token = request_token(kube_plane, VAULT_NS, REVIEWER, None, 3600)
    with running_openbao(tmp_path_factory.mktemp("bao-kube-plane")) as bao:
        root = bao.client()
        root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        root.sys.create_or_update_policy("federation", 'path "secret/data/db-*" { capabilities = ["read"] }')
        root.sys.enable_auth_method("kubernetes", path="kube-plane")
        root.write_data(
            "auth/kube-plane/config",
            data={
                "kubernetes_host": kube_plane.url,
                "kubernetes_ca_cert": kube_plane.ca_pem,
                "token_reviewer_jwt": reviewer_token,
                "disable_local_ca_jwt": True,
            },
        )
        root.write_data(
            "auth/kube-plane/role/reader",
            data={
                "bound_service_account_names": [READER],
                "bound_service_account_namespaces": [VAULT_NS],
                "audience": "vault",
                **TOKEN_SETTINGS,
            },
        )
        root.sys.enable_auth_method("jwt", path="kube-jwt")
        root.write_data(
            "auth/kube-jwt/config",
            data={"jwt_validation_pubkeys": _public_pems(kube_plane), "bound_issuer": kube_plane.issuer},
        )
        root.write_data(
            "auth/kube-jwt/role/reader",
            data={
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": ["vault"],
                "bound_subject": f"system:serviceaccount:{VAULT_NS}:{READER}",
                **TOKEN_SETTINGS,
            },
        )
        yield Vault(bao, Settings(kubernetes=True, kubeconfig=kube_plane.kubeconfig))


def test_vault_kubernetes_auth_with_a_service_account_ref(vault: Vault) -> None:
    auth = {
        "kubernetes": {
            "mountPath": "kube-plane",
            "role": "reader",
            "serviceAccountRef": {"name": READER, "namespace": VAULT_NS, "audiences": ["vault"]},
        }
    }
    logins = vault.logins("kube-plane")
    provider = vault_provider(vault.bao.address, auth, ConfigSource(), vault.settings, path="secret")
    assert provider.read("db-credentials") == DB
    assert vault.logins("kube-plane") == logins + 1


def test_vault_jwt_auth_with_a_kubernetes_service_account_token(vault: Vault) -> None:
    auth = {
        "jwt": {
            "path": "kube-jwt",
            "role": "reader",
            "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": READER, "namespace": VAULT_NS}},
        }
    }
    logins = vault.logins("kube-jwt")
    provider = vault_provider(vault.bao.address, auth, ConfigSource(), vault.settings, path="secret")
    assert provider.read("db-credentials") == DB
    assert vault.logins("kube-jwt") == logins + 1


def test_a_service_account_vault_does_not_bind_is_refused(vault: Vault) -> None:
    auth = {
        "kubernetes": {
            "mountPath": "kube-plane",
            "role": "reader",
            "serviceAccountRef": {"name": REVIEWER, "namespace": VAULT_NS},
        }
    }
    provider = vault_provider(vault.bao.address, auth, ConfigSource(), vault.settings, path="secret")
    with pytest.raises(StoreError, match="log in with kubernetes"):
        provider.read("db-credentials")


def test_a_token_request_for_a_missing_service_account_is_a_store_error(vault: Vault) -> None:
    auth = {
        "kubernetes": {
            "mountPath": "kube-plane",
            "role": "reader",
            "serviceAccountRef": {"name": "nobody", "namespace": VAULT_NS},
        }
    }
    provider = vault_provider(vault.bao.address, auth, ConfigSource(), vault.settings, path="secret")
    with pytest.raises(
        StoreError, match=r"TokenRequest for ServiceAccount eso-vault/nobody refused \(HTTP 404\)"
    ):
        provider.read("db-credentials")


# -- the kubernetes provider, the plane as another cluster -------------------------------------------


@dataclass
class Remote:
    plane: ControlPlane
    snapshot: Configuration


@pytest.fixture(scope="module")
def remote(kube_plane: ControlPlane) -> Remote:
    ensure_service_account(kube_plane, REMOTE_NS, SECRET_READER)
    create_object(
        kube_plane,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "read-secrets", "namespace": REMOTE_NS},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        },
    )
    _grant(kube_plane, REMOTE_NS, SECRET_READER, "read-secrets", kind="Role")
    create_object(
        kube_plane,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-credentials", "namespace": REMOTE_NS},
            "stringData": DB,
        },
    )
    cert_file, key_file = kube_plane.admin_cert
    token = request_token(kube_plane, REMOTE_NS, SECRET_READER, None, 3600)
    data = {
        "token": token.encode(),
        "tls.crt": Path(cert_file).read_bytes(),
        "tls.key": Path(key_file).read_bytes(),
    }
    secret = KubeSecret("esi-system", "remote-creds", data)
    return Remote(kube_plane, Configuration(secrets={("esi-system", "remote-creds"): secret}, source="test"))


def _ref(key: str) -> dict[str, str]:
    return {"name": "remote-creds", "namespace": "esi-system", "key": key}


def _read(
    remote: Remote, auth: dict[str, Any], namespace: str = REMOTE_NS, settings: Settings | None = None
) -> Any:
    spec = {
        "remoteNamespace": namespace,
        "server": {
            "url": remote.plane.url,
            "caBundle": base64.b64encode(remote.plane.ca_pem.encode()).decode(),
        },
        "auth": auth,
    }
    provider = kubernetes.build(
        StoreConfig("remote", "kubernetes", spec), remote.snapshot, settings or Settings()
    )
    try:
        return provider.read("db-credentials")
    finally:
        provider.close()


def test_the_remote_cluster_is_read_with_a_bearer_token(remote: Remote) -> None:
    assert _read(remote, {"token": {"bearerToken": _ref("token")}}) == DB


def test_the_remote_cluster_is_read_with_a_client_certificate(remote: Remote) -> None:
    assert _read(remote, {"cert": {"clientCert": _ref("tls.crt"), "clientKey": _ref("tls.key")}}) == DB


def test_the_remote_cluster_is_read_with_a_minted_service_account_token(remote: Remote) -> None:
    settings = Settings(kubernetes=True, kubeconfig=remote.plane.kubeconfig)
    auth = {"serviceAccount": {"name": SECRET_READER, "namespace": REMOTE_NS}}
    assert _read(remote, auth, settings=settings) == DB


def test_the_remote_clusters_rbac_decides(remote: Remote) -> None:
    with pytest.raises(StoreError, match="HTTP 403"):
        _read(remote, {"token": {"bearerToken": _ref("token")}}, namespace="kube-system")
