"""ESO's ``kubernetes`` provider: Secrets of cluster-main, from the same source as the CRs.

key = the Secret's name in ``remoteNamespace`` (default ``default``); property = a data key.
The provider serves the Secrets of the snapshot it is built from; ``served_secrets`` names them, so the
store registry builds a new provider for a snapshot in which one of them changed.

A store is served from cluster-main only when it points at cluster-main: no ``server.url``, or one of
the in-cluster names (``kubernetes.default[.svc[.cluster.local]]``), as ESO's examples write it. Its
``auth`` (whose RBAC ESO would use) is accepted and not used: the server reads with its own access and
the Authorizations decide who gets what. A store that points at another cluster is refused, never
answered with cluster-main's Secrets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.errors import SecretNotFound, StoreError
from federation.settings import Settings
from federation.stores.base import SecretData

IN_CLUSTER_HOSTS = frozenset(
    {"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
)
AUTH_METHODS = ("cert", "token", "serviceAccount")


@dataclass(frozen=True)
class KubernetesStore:
    """A ``kubernetes`` store spec, validated."""

    name: str
    namespace: str


class KubernetesProvider:
    """Reads Secrets of one namespace out of one configuration snapshot."""

    def __init__(self, namespace: str, snapshot: Configuration) -> None:
        self._namespace = namespace
        self._snapshot = snapshot

    def read(self, key: str) -> SecretData:
        """Return the Secret ``key`` as a map of its data keys to text."""
        secret = self._snapshot.secrets.get((self._namespace, key))
        if secret is None:
            raise SecretNotFound(f"key {key!r} does not exist")
        try:
            return {name: value.decode("utf-8") for name, value in secret.data.items()}
        except UnicodeDecodeError:
            raise StoreError(f"Secret {self._namespace}/{key} holds data that is not UTF-8 text") from None

    def close(self) -> None:
        """Nothing to release."""


def parse_store(store: StoreConfig) -> KubernetesStore:
    """The validated spec of ``store``; ``StoreError`` names what cannot be served."""
    spec, where = store.spec, f"kubernetes store {store.name!r}"
    namespace = spec.get("remoteNamespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise StoreError(f"{where}: remoteNamespace must be a non-empty string")
    server = spec.get("server") or {}
    if not isinstance(server, dict):
        raise StoreError(f"{where}: server must be a mapping {{url, caBundle, caProvider}}")
    url = server.get("url")
    if url is not None and not (isinstance(url, str) and _in_cluster(url)):
        raise StoreError(
            f"{where}: server.url {url!r} is another cluster; reading a remote cluster's Secrets is not "
            "served, and cluster-main's are never served in their place (leave server.url out, or "
            "write kubernetes.default, to read cluster-main's)"
        )
    if spec.get("authRef") is not None:
        raise StoreError(
            f"{where}: authRef (a kubeconfig in a Secret) is not served: it can point at any cluster; "
            "leave it out to read cluster-main's Secrets"
        )
    _check_auth(where, spec.get("auth"))
    return KubernetesStore(store.name, namespace)


def _in_cluster(url: str) -> bool:
    host = urlsplit(url if "//" in url else f"https://{url}").hostname
    return host in IN_CLUSTER_HOSTS


def _check_auth(where: str, auth: Any) -> None:
    if auth is None:
        return
    if not isinstance(auth, Mapping):
        raise StoreError(f"{where}: auth must be a mapping with one of {', '.join(AUTH_METHODS)}")
    given = [name for name, value in auth.items() if value is not None]
    unknown = [name for name in given if name not in AUTH_METHODS]
    if unknown or len(given) > 1:
        raise StoreError(f"{where}: auth must name at most one of {', '.join(AUTH_METHODS)} (found {given})")


def validate(store: StoreConfig, snapshot: Configuration, settings: Settings) -> None:
    """Raise ``StoreError`` when ``store`` cannot be served (what ``esi-federation check`` runs)."""
    parse_store(store)


def build(store: StoreConfig, snapshot: Configuration, settings: Settings) -> KubernetesProvider:
    """Provider factory (see ``stores.registry``)."""
    return KubernetesProvider(parse_store(store).namespace, snapshot)


def served_secrets(store: StoreConfig, snapshot: Configuration) -> Iterator[KubeSecret]:
    """The Secrets a provider of ``store`` serves out of ``snapshot`` (see ``stores.registry``)."""
    namespace = parse_store(store).namespace
    return (secret for (held_in, _), secret in sorted(snapshot.secrets.items()) if held_in == namespace)
