"""The federation server's configuration for the benchmarks: the walkthrough's resources, two stores.

``vault-prod`` is ESO's in-manifest ``fake`` provider; ``vault-openbao`` holds the same secrets in a real
OpenBao (KV v2 at ``secret/``) read with a token from a Secret. One Authorization grants both to
Prometheus' ServiceAccount of client-cluster-alpha, so one server answers both benchmarks.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CLUSTER = "client-cluster-alpha"
NAMESPACE = "monitoring"
SERVICE_ACCOUNT = "prometheus-esi-client"
AUDIENCE = "esi-federation"
FAKE_STORE = "vault-prod"
OPENBAO_STORE = "vault-openbao"
TOKEN_SECRET = {"name": "openbao-token", "namespace": "external-secrets", "key": "token"}
# The three secrets every /v1/secrets benchmark request asks for (two keys of the store).
REFERENCES = (
    ("db-credentials", "username"),
    ("db-credentials", "password"),
    ("api-keys", "service-a-token"),
)


def seed_secrets() -> dict[str, dict[str, str]]:
    """Fresh values for the two keys the benchmark requests read."""
    return {
        "db-credentials": {"username": "prometheus", "password": "pw-" + secrets.token_hex(12)},
        "api-keys": {"service-a-token": "tok-" + secrets.token_hex(12)},
    }


def fake_store(data: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """``vault-prod``: ESO's fake provider holding ``data``, each key a JSON object."""
    entries = [{"key": key, "value": json.dumps(dict(value))} for key, value in data.items()]
    return _store(FAKE_STORE, {"fake": {"data": entries}})


def openbao_store(address: str) -> dict[str, Any]:
    """``vault-openbao``: KV v2 at ``secret/`` of the OpenBao at ``address``, token from a Secret."""
    vault = {"server": address, "path": "secret", "version": "v2", "auth": {"tokenSecretRef": TOKEN_SECRET}}
    return _store(OPENBAO_STORE, {"vault": vault})


def token_secret(token: str) -> dict[str, Any]:
    """The v1 Secret that holds OpenBao's token for ``vault-openbao``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET["name"], "namespace": TOKEN_SECRET["namespace"]},
        "stringData": {TOKEN_SECRET["key"]: token},
    }


def authorization(stores: list[str]) -> dict[str, Any]:
    """Lets Prometheus' ServiceAccount of client-cluster-alpha read ``stores``."""
    return {
        "apiVersion": "federation.external-secrets.io/v1alpha1",
        "kind": "Authorization",
        "metadata": {"name": "allow-alpha-monitoring"},
        "spec": {
            "federationRef": {"kind": "KubernetesFederation", "name": CLUSTER},
            "subject": {
                "oidc": {
                    "issuer": "https://kubernetes.default.svc.cluster.local",
                    "subject": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
                }
            },
            "allowedClusterSecretStores": stores,
        },
    }


def secrets_request(store: str, references: tuple[tuple[str, str], ...] = REFERENCES) -> bytes:
    """The JSON body of ``POST /v1/secrets`` asking ``store`` for ``references``."""
    items = [{"store": store, "key": key, "property": prop} for key, prop in references]
    return json.dumps({"cluster": CLUSTER, "secrets": items}).encode()


def write_manifests(directory: Path, documents: Mapping[str, Mapping[str, Any] | list[Any]]) -> None:
    """Write each document (or list of documents) to ``directory/<name>.yaml``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        docs = document if isinstance(document, list) else [document]
        (directory / f"{name}.yaml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")


def _store(name: str, provider: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": name},
        "spec": {"provider": provider},
    }
