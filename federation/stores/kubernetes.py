"""ESO's ``kubernetes`` provider: Secrets of cluster-main, or of another cluster's API server.

key = the Secret's name in ``remoteNamespace`` (default ``default``); property = a data key.

- **cluster-main** (no ``server.url``, or one of the in-cluster names
  ``kubernetes.default[.svc[.cluster.local]]``, as ESO's examples write it): the Secrets come from the
  server's own configuration source (the manifests directory, or the watch). The provider serves the
  snapshot it is built from; ``served_secrets`` names those Secrets, so the store registry builds a new
  provider for a snapshot in which one of them changed. The store's ``auth`` (whose RBAC ESO would use)
  is accepted and not used: the server reads with its own access and the Authorizations decide.
- **another cluster** (any other ``server.url``, ``https://`` only): each read is a GET of
  ``/api/v1/namespaces/<remoteNamespace>/secrets/<key>`` on that API server, trusting ``caBundle`` /
  ``caProvider`` (else the system trust store), authenticated by ``auth.token.bearerToken`` (a Secret),
  ``auth.cert`` (a client certificate and key, Secrets), or ``auth.serviceAccount`` (a token minted by
  cluster-main's TokenRequest API, Kubernetes mode only). cluster-main's Secrets are never served for it.
- ``authRef`` (a kubeconfig in a Secret) is refused: it can name any cluster and any credential plugin.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.config.references import points_at_cluster_main
from federation.errors import SecretNotFound, StoreError, StoreUnavailable
from federation.settings import Settings
from federation.stores.base import SecretData
from federation.stores.connection import ca_pem, client_tls_context, https_session
from federation.stores.credentials import SecretReader, client_certificate
from federation.stores.service_accounts import parse_service_account

AUTH_METHODS = ("cert", "token", "serviceAccount")
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+$")
OK, NOT_FOUND, UNAVAILABLE = 200, 404, (429, 502, 503, 504)


@dataclass(frozen=True)
class RemoteCluster:
    """How to reach another cluster's API server, validated."""

    url: str
    ca: bytes | None
    bearer: Callable[[], str] | None
    client_cert: tuple[bytes, bytes] | None = field(repr=False)
    token_lifetime: float | None = None  # a minted token is minted again after half of it


@dataclass(frozen=True)
class KubernetesStore:
    """A ``kubernetes`` store spec, validated; ``remote`` is None for cluster-main."""

    name: str
    namespace: str
    remote: RemoteCluster | None = None


class KubernetesProvider:
    """Reads Secrets of one namespace out of one configuration snapshot (cluster-main)."""

    reads_in_memory = True

    def __init__(self, namespace: str, snapshot: Configuration) -> None:
        self._namespace = namespace
        self._snapshot = snapshot

    def read(self, key: str) -> SecretData:
        """Return the Secret ``key`` as a map of its data keys to text."""
        secret = self._snapshot.secrets.get((self._namespace, key))
        if secret is None:
            raise SecretNotFound(f"key {key!r} does not exist")
        return _text(secret.data, f"Secret {self._namespace}/{key}")

    def close(self) -> None:
        """Nothing to release."""


class RemoteKubernetesProvider:
    """Reads Secrets of one namespace of another cluster's API server; safe to share between threads."""

    reads_in_memory = False

    def __init__(self, store: KubernetesStore, remote: RemoteCluster, settings: Settings) -> None:
        self._where = f"kubernetes store {store.name!r}"
        self._namespace = store.namespace
        self._remote = remote
        self._session, self._ca_file = https_session(
            self,
            self._where,
            remote.url,
            remote.ca,
            remote.client_cert,
            deadline=settings.store_connect_timeout + settings.store_read_timeout,
        )
        self._timeout = (settings.store_connect_timeout, settings.store_read_timeout)
        self._lock = threading.Lock()
        self._minted: tuple[str, float] | None = None

    def read(self, key: str) -> SecretData:
        """GET the Secret ``key``: a map of its data keys to text."""
        if not SECRET_NAME.match(key) or len(key) > 253:
            raise SecretNotFound(f"key {key!r} is not a Secret name")
        path = f"/api/v1/namespaces/{quote(self._namespace, safe='')}/secrets/{quote(key, safe='')}"
        headers = {"Accept": "application/json"}
        if self._remote.bearer is not None:
            token = self._token()
            if not TOKEN_TEXT.match(token):
                raise StoreError(f"{self._where}: the bearer token is not one line of printable text")
            headers["Authorization"] = f"Bearer {token}"
        action = f"{self._where}: read Secret {self._namespace}/{key}"
        try:
            answer = self._session.get(
                self._remote.url + path, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.exceptions.SSLError:
            raise StoreError(
                f"{action}: TLS connection failed, check server.url and caBundle/caProvider"
            ) from None
        except (requests.ConnectionError, requests.Timeout):
            raise StoreUnavailable(f"{action}: the API server cannot be reached") from None
        if answer.status_code == NOT_FOUND:
            raise SecretNotFound(f"key {key!r} does not exist")
        if answer.status_code in UNAVAILABLE:
            raise StoreUnavailable(f"{action}: the API server answered HTTP {answer.status_code}")
        if answer.status_code != OK:
            raise StoreError(f"{action}: the API server answered HTTP {answer.status_code}")
        return _text(_secret_data(answer, action), f"Secret {self._namespace}/{key}")

    def close(self) -> None:
        """Close the connections; the CA file goes with the provider."""
        self._session.close()

    def _token(self) -> str:
        bearer = self._remote.bearer
        assert bearer is not None
        lifetime = self._remote.token_lifetime
        if lifetime is None:
            return bearer()  # a Secret's token: read from the snapshot at each request
        with self._lock:
            now = time.monotonic()
            if self._minted is None or now >= self._minted[1]:
                self._minted = (bearer(), now + lifetime / 2)
            return self._minted[0]


def _secret_data(answer: requests.Response, action: str) -> dict[str, bytes]:
    try:
        document = answer.json()
    except ValueError:
        raise StoreError(f"{action}: the API server did not answer JSON") from None
    data = document.get("data") if isinstance(document, dict) else None
    if data is None:
        return {}
    try:
        return {str(name): base64.b64decode(str(value), validate=True) for name, value in data.items()}
    except (AttributeError, binascii.Error, ValueError):
        raise StoreError(f"{action}: the API server answered a Secret whose data is not base64") from None


def _text(data: Mapping[str, bytes], what: str) -> dict[str, str]:
    try:
        return {name: value.decode("utf-8") for name, value in data.items()}
    except UnicodeDecodeError:
        raise StoreError(f"{what} holds data that is not UTF-8 text") from None


def parse_store(store: StoreConfig, snapshot: Configuration, settings: Settings) -> KubernetesStore:
    """The validated spec of ``store``; ``StoreError`` names what cannot be served."""
    spec, where = store.spec, f"kubernetes store {store.name!r}"
    namespace = spec.get("remoteNamespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise StoreError(f"{where}: remoteNamespace must be a non-empty string")
    server = spec.get("server") or {}
    if not isinstance(server, dict):
        raise StoreError(f"{where}: server must be a mapping {{url, caBundle, caProvider}}")
    if spec.get("authRef") is not None:
        raise StoreError(
            f"{where}: authRef (a kubeconfig in a Secret) is not served: a kubeconfig can name any cluster "
            "and credential plugin; write server.url and auth.token, auth.cert or auth.serviceAccount"
        )
    auth = spec.get("auth")
    method = _auth_method(where, auth)
    if points_at_cluster_main(spec):
        return KubernetesStore(store.name, namespace)
    url = str(server["url"])
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
        raise StoreError(f"{where}: server.url of another cluster must be https://host[:port], got {url!r}")
    if method is None:
        raise StoreError(
            f"{where}: reading another cluster ({url}) needs auth: token, cert or serviceAccount"
        )
    ca = ca_pem(where, server, snapshot)
    config: Mapping[str, Any] = auth[method] if isinstance(auth, Mapping) else {}
    remote = _remote(where, url.rstrip("/"), ca, (method, config), snapshot=snapshot, settings=settings)
    return KubernetesStore(store.name, namespace, remote)


def _auth_method(where: str, auth: Any) -> str | None:
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        raise StoreError(f"{where}: auth must be a mapping with one of {', '.join(AUTH_METHODS)}")
    given = [name for name, value in auth.items() if value is not None]
    unknown = [name for name in given if name not in AUTH_METHODS]
    if unknown or len(given) > 1:
        raise StoreError(f"{where}: auth must name at most one of {', '.join(AUTH_METHODS)} (found {given})")
    if given and not isinstance(auth[given[0]], Mapping):
        raise StoreError(f"{where}: auth.{given[0]} must be a mapping")
    return given[0] if given else None


def _remote(
    where: str,
    url: str,
    ca: bytes | None,
    auth: tuple[str, Mapping[str, Any]],
    *,
    snapshot: Configuration,
    settings: Settings,
) -> RemoteCluster:
    method, config = auth
    secrets = SecretReader(where, snapshot)
    if method == "token":
        ref = secrets.ref(config.get("bearerToken"), "auth.token.bearerToken")
        return RemoteCluster(url, ca, lambda: secrets.text(ref), None)
    if method == "cert":
        pair = client_certificate(
            where,
            secrets,
            (config.get("clientCert"), "auth.cert.clientCert"),
            (config.get("clientKey"), "auth.cert.clientKey"),
        )
        return RemoteCluster(url, ca, None, pair)
    account = parse_service_account(where, "auth.serviceAccount", config, settings, default_audiences=())
    return RemoteCluster(url, ca, account.mint, None, float(account.expiration_seconds))


def validate(store: StoreConfig, snapshot: Configuration, settings: Settings) -> None:
    """Raise ``StoreError`` when ``store`` cannot be served (what ``esi-federation check`` runs)."""
    parsed = parse_store(store, snapshot, settings)
    if parsed.remote is not None and parsed.remote.client_cert is not None:
        client_tls_context(f"kubernetes store {store.name!r}", parsed.remote.client_cert)


def build(
    store: StoreConfig, snapshot: Configuration, settings: Settings
) -> KubernetesProvider | RemoteKubernetesProvider:
    """Provider factory (see ``stores.registry``)."""
    parsed = parse_store(store, snapshot, settings)
    if parsed.remote is not None:
        return RemoteKubernetesProvider(parsed, parsed.remote, settings)
    return KubernetesProvider(parsed.namespace, snapshot)


def served_secrets(store: StoreConfig, snapshot: Configuration) -> Iterator[KubeSecret]:
    """The Secrets of cluster-main a provider of ``store`` serves out of ``snapshot`` (none for another
    cluster; see ``stores.registry``)."""
    if not points_at_cluster_main(store.spec):
        return iter(())
    namespace = store.spec.get("remoteNamespace") or "default"
    return (secret for (held_in, _), secret in sorted(snapshot.secrets.items()) if held_in == namespace)
