"""ESO's ``vault`` provider: KV v1 and v2 secrets of a Vault (or OpenBao) server, through hvac.

This is the only module that talks to Vault. One ``VaultProvider`` per ClusterSecretStore holds one
``hvac.Client`` (one ``requests.Session``, so connections are reused) and one token:

- the token is obtained lazily on the first read (``vault_auth``), renewed with ``renew-self`` when
  less than a third of its TTL remains, and obtained again when it has expired;
- a read answered ``403`` checks the token with ``lookup-self``: a token Vault no longer knows (revoked,
  expired early, Vault restarted with fresh storage) is replaced by a new login and the read is retried
  once; a valid token means the policy denies the path, which is a ``StoreError``;
- every hvac and requests exception is translated here, at the boundary, and dropped: their messages can
  carry Vault's response bodies. Only the store name, the key and an HTTP status reach a message.

Remote references follow ESO: ``path`` is the KV mount, ``key`` the secret's path under it (a key that
already starts with the mount, or with ``<mount>/data/`` on v2, is accepted as ESO accepts it); without
``path`` the key's first segment is the mount. The secret's whole data map is returned (``data.data`` on
KV v2) and ``stores.base.extract`` picks properties from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import hvac
import hvac.exceptions
import requests

from federation.config.model import Configuration, StoreConfig
from federation.errors import FederationError, SecretNotFound, StoreError, StoreUnavailable
from federation.settings import Settings
from federation.stores.connection import ca_pem, client_tls_context, https_session
from federation.stores.credentials import SecretReader, client_certificate
from federation.stores.vault_auth import Auth, Login, StaticToken, parse_auth

log = logging.getLogger(__name__)

LOGIN_BACKOFF = 1.0  # seconds during which a failed login is answered without trying again

_UNAVAILABLE = (
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.VaultNotInitialized,
)


class _PermissionDenied(StoreError):
    """Vault answered 403: the token is no longer valid, or its policy denies the path."""


@dataclass(frozen=True)
class VaultStore:
    """The connection part of a ``vault`` store spec, validated."""

    name: str
    server: str
    mount: str | None
    version: str
    namespace: str | None
    ca_pem: bytes | None
    headers: Mapping[str, str] = field(repr=False)  # may carry credentials of a proxy in front
    client_cert: tuple[bytes, bytes] | None = field(default=None, repr=False)

    def data_path(self, key: str) -> str:
        """The API path (without ``/v1/``) that holds ``key``, built as ESO builds it."""
        segments = key.split("/")
        if not key or any(segment in ("", ".", "..") for segment in segments):
            raise SecretNotFound(f"key {key!r} is not a valid Vault path")
        if self.mount is None:
            if self.version == "v2" and "data" not in segments[1:-1]:
                segments = [segments[0], "data", *segments[1:]]
            return "/".join(quote(segment, safe="") for segment in segments)
        prefix = self.mount.split("/")
        if segments[: len(prefix)] == prefix and len(segments) > len(prefix):
            segments = segments[len(prefix) :]
            if self.version == "v2" and segments[0] == "data" and len(segments) > 1:
                segments = segments[1:]
        mount = [*prefix, "data"] if self.version == "v2" else prefix
        return "/".join(quote(segment, safe="") for segment in [*mount, *segments])


@dataclass(frozen=True)
class _Token:
    """A Vault token and what is known of its lease (``ttl`` 0: it does not expire)."""

    value: str = field(repr=False)
    ttl: float
    renewable: bool
    expires_at: float | None

    def expired(self, now: float) -> bool:
        # A small margin, so that a read does not start with a token that dies on the way.
        return self.expires_at is not None and now >= self.expires_at - min(5.0, self.ttl / 10)

    def wants_renewal(self, now: float) -> bool:
        return self.renewable and self.expires_at is not None and self.expires_at - now < self.ttl / 3


class VaultProvider:
    """Reads KV secrets of one Vault store; safe to share between threads."""

    reads_in_memory = False

    def __init__(
        self, store: VaultStore, auth: Auth, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock
        client_cert = auth.client_cert if isinstance(auth, Login) and auth.client_cert else store.client_cert
        where = f"vault store {store.name!r}"
        session, self._ca_file = https_session(
            self,
            where,
            store.server,
            store.ca_pem,
            client_cert,
            deadline=settings.store_connect_timeout + settings.store_read_timeout,
        )
        session.headers.update(store.headers)
        self._client = hvac.Client(
            url=store.server,
            token="",  # never the VAULT_TOKEN of the environment: tokens go per request
            verify=session.verify,
            timeout=(settings.store_connect_timeout, settings.store_read_timeout),
            # A redirect would carry X-Vault-Token to wherever Vault points; requests strips only
            # the Authorization header on a change of host.
            allow_redirects=False,
            session=session,
        )
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._failed_login: tuple[float, FederationError] | None = None

    def read(self, key: str) -> Mapping[str, Any]:
        """The data map of the secret at ``key``."""
        try:
            return self._read_secret(key)
        except _PermissionDenied as denied:
            raise StoreError(denied.detail) from None  # the internal class stays inside

    def _read_secret(self, key: str) -> Mapping[str, Any]:
        path = self._store.data_path(key)
        token = self._valid_token()
        try:
            body = self._read(path, token, key)
        except _PermissionDenied:
            body = self._read(path, self._token_after_denial(token, f"read key {key!r}"), key)
        return self._secret_data(body, key)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """One call to ``/v1/<path>`` with the store's token, for what is not a KV read (generators,
        leases). An empty answer (``204``) is ``{}``; a token Vault no longer knows is replaced once, as
        for reads. ``path`` is already URL-safe.
        """
        action = f"{method.upper()} {path}"
        token = self._valid_token()
        namespace = self._store.namespace
        try:
            try:
                return self._call(method, path, token, action, json=body, namespace=namespace, empty_ok=True)
            except _PermissionDenied:
                retry = self._token_after_denial(token, action)
                return self._call(method, path, retry, action, json=body, namespace=namespace, empty_ok=True)
        except _PermissionDenied as denied:
            raise StoreError(denied.detail) from None

    def close(self) -> None:
        """Close the connections; the token is left to expire, the CA file goes with the provider."""
        self._client.adapter.close()

    def _read(self, path: str, token: _Token, key: str) -> Mapping[str, Any]:
        return self._call("get", path, token, f"read key {key!r}", key=key, namespace=self._store.namespace)

    def _secret_data(self, body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        data = body.get("data")
        if self._store.version == "v2":
            if not isinstance(data, dict) or "data" not in data:
                raise StoreError(f"vault store {self._store.name!r}: key {key!r} is not a KV v2 secret")
            data = data["data"]
            if data is None:  # a deleted or destroyed version
                raise SecretNotFound(f"key {key!r} does not exist")
        if not isinstance(data, dict):
            raise StoreError(f"vault store {self._store.name!r}: key {key!r} holds no key/value data")
        return data

    def _valid_token(self) -> _Token:
        with self._lock:
            now = self._clock()
            if self._token is None or self._token.expired(now):
                self._token = self._obtain_token()
            elif self._token.wants_renewal(now):
                self._token = self._renewed(self._token)
            return self._token

    def _token_after_denial(self, denied: _Token, action: str) -> _Token:
        """The token to retry a denied read with; ``StoreError`` when the policy itself denies it."""
        with self._lock:
            if self._token is not None and self._token is not denied:
                return self._token  # another thread has logged in again meanwhile
            if isinstance(self._auth, Login) and not self._still_valid(denied):
                log.info("vault store %r: token no longer valid, logging in again", self._store.name)
                self._token = self._obtain_token()
                return self._token
        raise StoreError(f"vault store {self._store.name!r}: permission denied to {action}")

    def _still_valid(self, token: _Token) -> bool:
        try:
            self._call("get", "auth/token/lookup-self", token, "look up its token", namespace=self._login_ns)
        except _PermissionDenied:
            return False
        return True

    @property
    def _login_ns(self) -> str | None:
        """Where the token lives: ``auth.namespace``, else the store's namespace."""
        return self._auth.namespace or self._store.namespace

    def _obtain_token(self) -> _Token:
        """A new token. For a second after Vault refused a login, the same error comes back without a
        new attempt: wrong credentials must not turn every request into a login that Vault refuses.
        An unreachable or sealed Vault is tried again at once, so that reads resume as soon as it is back.
        """
        if self._failed_login is not None and self._clock() < self._failed_login[0] + LOGIN_BACKOFF:
            failure = self._failed_login[1]
            raise type(failure)(failure.detail)
        try:
            token = self._log_in()
        except StoreUnavailable:
            raise
        except FederationError as exc:
            self._failed_login = (self._clock(), exc)
            raise
        self._failed_login = None
        return token

    def _log_in(self) -> _Token:
        if isinstance(self._auth, StaticToken):
            return self._static_token(self._auth.read_token())
        body = self._call(
            "post",
            self._auth.path,
            None,
            f"log in with {self._auth.method}",
            json=self._auth.fields(),
            namespace=self._login_ns,
        )
        token = self._lease(body.get("auth"), "log in")
        log.info(
            "vault store %r: logged in with %s (ttl %ss)", self._store.name, self._auth.method, token.ttl
        )
        return token

    def _static_token(self, value: str) -> _Token:
        unknown = _Token(value, 0.0, renewable=False, expires_at=None)
        try:
            body = self._call(
                "get", "auth/token/lookup-self", unknown, "look up its token", namespace=self._login_ns
            )
        except _PermissionDenied:
            # A token without the default policy may not look itself up; reads will tell.
            return unknown
        data = body.get("data")
        if not isinstance(data, dict):
            return unknown
        ttl = float(data.get("ttl") or 0)
        lease = float(data.get("creation_ttl") or ttl)
        expires = self._clock() + ttl if ttl > 0 else None
        return _Token(value, lease, renewable=bool(data.get("renewable")), expires_at=expires)

    def _renewed(self, token: _Token) -> _Token:
        try:
            body = self._call(
                "post", "auth/token/renew-self", token, "renew its token", json={}, namespace=self._login_ns
            )
            renewed = self._lease(body.get("auth"), "renew its token", value=token.value)
        except StoreUnavailable:
            raise
        except FederationError:
            renewed = None
        if renewed is not None and renewed.ttl >= token.ttl / 3:
            return renewed
        # Not renewable any further (max TTL reached, or refused): log in again while we still can.
        if isinstance(self._auth, Login):
            return self._obtain_token()
        return _Token(token.value, token.ttl, renewable=False, expires_at=token.expires_at)

    def _lease(self, auth: Any, action: str, *, value: str | None = None) -> _Token:
        """The token of a login (or, given ``value``, a renewal) answer's ``auth`` block."""
        if isinstance(auth, dict) and value is None:
            value = auth.get("client_token")
        if not isinstance(auth, dict) or not isinstance(value, str) or not value:
            raise StoreError(f"vault store {self._store.name!r}: Vault did not return a token ({action})")
        ttl = float(auth.get("lease_duration") or 0)
        expires = self._clock() + ttl if ttl > 0 else None
        return _Token(value, ttl, bool(auth.get("renewable")), expires)

    def _call(
        self,
        method: str,
        path: str,
        token: _Token | None,
        action: str,
        *,
        json: Any = None,
        key: str | None = None,
        namespace: str | None = None,
        empty_ok: bool = False,
    ) -> Mapping[str, Any]:
        """One request to ``/v1/<path>``; every failure comes back as a ``FederationError``.

        A 404 means ``SecretNotFound`` when reading ``key``, and a ``StoreError`` otherwise. With
        ``empty_ok``, an answer without a body (``204``) is ``{}``.
        """
        headers = {"X-Vault-Token": token.value} if token is not None else {}
        if namespace is not None:
            headers["X-Vault-Namespace"] = namespace
        try:
            answer = self._client.adapter.request(method, f"/v1/{path}", headers=headers, json=json)
        except hvac.exceptions.InvalidPath:
            if key is not None:
                raise SecretNotFound(f"key {key!r} does not exist") from None
            raise StoreError(
                f"vault store {self._store.name!r}: no such path (HTTP 404) to {action}"
            ) from None
        except (hvac.exceptions.VaultError, requests.RequestException, ValueError) as exc:
            raise _translate(exc, self._store.name, action) from None
        if not isinstance(answer, dict):
            status = getattr(answer, "status_code", "?")
            if empty_ok and status == 204:
                return {}
            raise StoreError(f"vault store {self._store.name!r}: unexpected HTTP {status} to {action}")
        return answer


def _translate(exc: Exception, store: str, action: str) -> FederationError:
    """The ``FederationError`` for a failed call; the exception's own text is never used."""
    where = f"vault store {store!r}"
    log.warning("%s: failed to %s: %s", where, action, type(exc).__name__)
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{where} is sealed or unavailable ({action})")
    if isinstance(exc, hvac.exceptions.Forbidden):
        return _PermissionDenied(f"{where}: permission denied ({action})")
    if isinstance(exc, requests.exceptions.SSLError):
        return StoreError(f"{where}: TLS connection failed, check server and caBundle/caProvider ({action})")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return StoreUnavailable(f"{where} cannot be reached ({action})")
    return StoreError(f"{where}: Vault answered with an error ({type(exc).__name__}) to {action}")


def parse_store(store: StoreConfig, snapshot: Configuration) -> VaultStore:
    """The connection settings of ``store``; ``StoreError`` explains a spec that cannot work."""
    spec, where = store.spec, f"vault store {store.name!r}"
    server = spec.get("server")
    if not isinstance(server, str) or urlsplit(server).scheme not in ("https", "http"):
        raise StoreError(f"{where}: server must be an https:// (or http://) URL")
    if not urlsplit(server).hostname:
        raise StoreError(f"{where}: server must name a host")
    version = spec.get("version", "v2")
    if version not in ("v1", "v2"):
        raise StoreError(f"{where}: version must be v1 or v2")
    mount = spec.get("path")
    if mount is not None:
        if not isinstance(mount, str) or not mount.strip("/"):
            raise StoreError(f"{where}: path (the KV mount) must be a non-empty string")
        mount = mount.strip("/")
        if version == "v2" and mount.endswith("/data"):
            mount = mount.removesuffix("/data")  # ESO accepts the mount with its /data suffix
    namespace = spec.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise StoreError(f"{where}: namespace must be a non-empty string")
    ca = ca_pem(where, spec, snapshot)
    return VaultStore(
        store.name,
        server.rstrip("/"),
        mount,
        version,
        namespace,
        ca,
        _headers(where, spec),
        _transport_certificate(where, spec.get("tls"), snapshot),
    )


def _transport_certificate(where: str, tls: Any, snapshot: Configuration) -> tuple[bytes, bytes] | None:
    """``tls: {certSecretRef, keySecretRef}``: a client certificate for Vaults that require mTLS."""
    if tls is None:
        return None
    if not isinstance(tls, dict) or tls.get("certSecretRef") is None or tls.get("keySecretRef") is None:
        raise StoreError(f"{where}: tls needs certSecretRef and keySecretRef ({{name, namespace, key}})")
    return client_certificate(
        where,
        SecretReader(where, snapshot),
        (tls["certSecretRef"], "tls.certSecretRef"),
        (tls["keySecretRef"], "tls.keySecretRef"),
    )


def _headers(where: str, spec: Mapping[str, Any]) -> dict[str, str]:
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in headers.items()
    ):
        raise StoreError(f"{where}: headers must map header names to strings")
    if any(name.lower().startswith("x-vault-") for name in headers):
        raise StoreError(f"{where}: headers must not set X-Vault-* headers; use namespace and auth")
    return dict(headers)


def validate(store: StoreConfig, snapshot: Configuration, settings: Settings) -> None:
    """Raise ``StoreError`` when ``store`` cannot be served: everything ``build`` checks, without a
    client (what ``esi-federation check`` runs)."""
    auth = parse_auth(store.name, store.spec, snapshot, settings)
    parsed = parse_store(store, snapshot)
    client_cert = auth.client_cert if isinstance(auth, Login) and auth.client_cert else parsed.client_cert
    if client_cert is not None:
        client_tls_context(f"vault store {store.name!r}", client_cert)


def build(
    store: StoreConfig,
    snapshot: Configuration,
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> VaultProvider:
    """Provider factory (see ``stores.registry``); no request is sent before the first read."""
    auth = parse_auth(store.name, store.spec, snapshot, settings)
    return VaultProvider(parse_store(store, snapshot), auth, settings, clock)
