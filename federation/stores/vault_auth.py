"""How the vault provider obtains a Vault token: ESO's ``auth`` block of a ``vault`` store.

Each method turns the spec into either a static token (``tokenSecretRef``) or a login request
(``POST auth/<mount>/login[/<username>]``) whose credentials are read at login time from the
configuration snapshot the provider is built from (a rotated Secret makes the store registry build a new
provider) or from the server's current projected ServiceAccount token. The ``cert``
method's client certificate and key are read when the provider is built (they go into its TLS
connections; a change of the Secret rebuilds the provider). Nothing here does network I/O, and no
message ever holds a credential.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from federation.config.model import Configuration
from federation.errors import StoreError
from federation.settings import Settings
from federation.stores.credentials import SecretReader, client_certificate
from federation.stores.service_accounts import parse_service_account

METHODS = ("tokenSecretRef", "appRole", "kubernetes", "ldap", "userPass", "jwt", "cert")
# ESO's methods that sign with a cloud identity this server does not have: refused, each saying why.
REFUSED = {
    "iam": "auth.iam (AWS IAM) is not served: it signs with AWS credentials or IRSA, which a server "
    "outside AWS does not have; use appRole, jwt or kubernetes",
    "gcp": "auth.gcp (Google Cloud) is not served: it signs with a GCP service account or Workload "
    "Identity, which a server outside GCP does not have; use appRole, jwt or kubernetes",
}


@dataclass(frozen=True)
class StaticToken:
    """``tokenSecretRef``: a token held in a Secret; it cannot log in again, only be renewed."""

    read_token: Callable[[], str]
    method: str = "tokenSecretRef"
    namespace: str | None = None


@dataclass(frozen=True)
class Login:
    """A login method: ``POST auth/<mount>/login[/<username>]`` with ``fields()`` as the JSON body;
    ``client_cert`` (PEM certificate, PEM key) is presented in the TLS handshake (``cert``)."""

    method: str
    mount: str
    fields: Callable[[], dict[str, str]]
    namespace: str | None = None
    username: str | None = None
    client_cert: tuple[bytes, bytes] | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        """The login path under ``/v1/`` (segments quoted)."""
        parts = [*self.mount.split("/"), "login", *([self.username] if self.username else [])]
        return "auth/" + "/".join(quote(part, safe="") for part in parts)


Auth = StaticToken | Login


def parse_auth(store_name: str, spec: Mapping[str, Any], snapshot: Configuration, settings: Settings) -> Auth:
    """The auth method of a vault store's spec; ``StoreError`` explains a spec that cannot work.

    ``auth.namespace`` (ESO: the Vault namespace to log in to, when it differs from the store's)
    is kept on the result; ``None`` means the store's namespace.
    """
    where = f"vault store {store_name!r}"
    auth = spec.get("auth")
    if not isinstance(auth, dict):
        raise StoreError(f"{where}: spec.provider.vault.auth is required ({', '.join(METHODS)})")
    namespace = auth.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise StoreError(f"{where}: auth.namespace must be a non-empty string")
    return replace(_method(where, auth, snapshot, settings), namespace=namespace)


def _method(where: str, auth: Mapping[str, Any], snapshot: Configuration, settings: Settings) -> Auth:
    given = [name for name in auth if name != "namespace" and auth[name] is not None]
    if len(given) > 1:
        raise StoreError(
            f"{where}: auth names {len(given)} methods ({', '.join(given)}); ESO takes exactly one"
        )
    if not given:
        raise StoreError(f"{where}: auth must name one of {', '.join(METHODS)}")
    method = given[0]
    if method in REFUSED:
        raise StoreError(f"{where}: {REFUSED[method]}")
    if method not in METHODS:
        raise StoreError(f"{where}: auth.{method} is not a vault auth method (served: {', '.join(METHODS)})")
    config = auth[method]
    if not isinstance(config, dict):
        raise StoreError(f"{where}: auth.{method} must be a mapping")
    secrets = SecretReader(where, snapshot)
    if method == "tokenSecretRef":
        return StaticToken(secrets.reader(config, f"auth.{method}"))
    if method == "appRole":
        return _app_role(where, config, secrets)
    if method == "kubernetes":
        return _kubernetes(where, config, secrets, settings)
    if method in ("ldap", "userPass"):
        return _password(where, method, config, secrets)
    if method == "cert":
        return _cert(where, config, secrets)
    return _jwt(where, config, secrets, settings)


def _password(where: str, method: str, config: Mapping[str, Any], secrets: SecretReader) -> Login:
    """``ldap`` and ``userPass``: ``POST auth/<path>/login/<username>`` with the password of a Secret."""
    username = config.get("username")
    if not isinstance(username, str) or not username:
        raise StoreError(f"{where}: auth.{method}.username is required")
    read_password = secrets.reader(config.get("secretRef"), f"auth.{method}.secretRef")
    return Login(
        method,
        _mount(where, config, "path", method.lower()),
        lambda: {"password": read_password()},
        username=username,
    )


def _cert(where: str, config: Mapping[str, Any], secrets: SecretReader) -> Login:
    """``cert``: the TLS client certificate (``clientCert``) and its key (``secretRef``) log in."""
    pair = client_certificate(
        where,
        secrets,
        (config.get("clientCert"), "auth.cert.clientCert"),
        (config.get("secretRef"), "auth.cert.secretRef"),
    )
    return Login("cert", _mount(where, config, "path", "cert"), dict, client_cert=pair)


def _app_role(where: str, config: Mapping[str, Any], secrets: SecretReader) -> Login:
    read_secret_id = secrets.reader(config.get("secretRef"), "auth.appRole.secretRef")
    role_id, role_ref = config.get("roleId"), config.get("roleRef")
    if (role_id is None) == (role_ref is None):
        raise StoreError(f"{where}: auth.appRole needs exactly one of roleId and roleRef")
    if role_id is not None and (not isinstance(role_id, str) or not role_id):
        raise StoreError(f"{where}: auth.appRole.roleId must be a non-empty string")
    read_role_id = (
        _constant(role_id) if role_id is not None else secrets.reader(role_ref, "auth.appRole.roleRef")
    )
    return Login(
        "appRole",
        _mount(where, config, "path", "approle"),
        lambda: {"role_id": read_role_id(), "secret_id": read_secret_id()},
    )


def _kubernetes(where: str, config: Mapping[str, Any], secrets: SecretReader, settings: Settings) -> Login:
    role = _role(where, config, "kubernetes")
    read_jwt: Callable[[], str]
    if config.get("serviceAccountRef") is not None and config.get("secretRef") is not None:
        raise StoreError(f"{where}: auth.kubernetes takes one of serviceAccountRef and secretRef, not both")
    if config.get("serviceAccountRef") is not None:
        read_jwt = parse_service_account(
            where, "auth.kubernetes.serviceAccountRef", config["serviceAccountRef"], settings
        ).mint
    elif config.get("secretRef") is not None:
        # ESO defaults the key to "token"; here it must be written out, because the server loads (and
        # watches, in Kubernetes mode) only the Secrets whose key a store names.
        read_jwt = secrets.reader(config["secretRef"], "auth.kubernetes.secretRef")
    else:
        read_jwt = functools.partial(_own_token, where, settings.service_account_token_file)
    return Login(
        "kubernetes",
        _mount(where, config, "mountPath", "kubernetes"),
        lambda: {"role": role, "jwt": read_jwt()},
    )


def _jwt(where: str, config: Mapping[str, Any], secrets: SecretReader, settings: Settings) -> Login:
    role = _role(where, config, "jwt")
    minted = config.get("kubernetesServiceAccountToken")
    read_jwt: Callable[[], str]
    if minted is not None and config.get("secretRef") is not None:
        raise StoreError(
            f"{where}: auth.jwt takes one of secretRef and kubernetesServiceAccountToken, not both"
        )
    if minted is not None:
        if not isinstance(minted, dict):
            raise StoreError(f"{where}: auth.jwt.kubernetesServiceAccountToken must be a mapping")
        read_jwt = parse_service_account(
            where,
            "auth.jwt.kubernetesServiceAccountToken.serviceAccountRef",
            minted.get("serviceAccountRef"),
            settings,
            audiences=minted.get("audiences"),
            expiration_seconds=minted.get("expirationSeconds"),
        ).mint
    else:
        read_jwt = secrets.reader(config.get("secretRef"), "auth.jwt.secretRef")
    return Login("jwt", _mount(where, config, "path", "jwt"), lambda: {"role": role, "jwt": read_jwt()})


def _role(where: str, config: Mapping[str, Any], method: str) -> str:
    role = config.get("role")
    if not isinstance(role, str) or not role:
        raise StoreError(f"{where}: auth.{method}.role is required")
    return role


def _mount(where: str, config: Mapping[str, Any], field: str, default: str) -> str:
    mount = config.get(field, default)
    if not isinstance(mount, str) or not mount.strip("/"):
        raise StoreError(f"{where}: {field} of the auth method must be a non-empty path")
    return mount.strip("/")


def _constant(value: str) -> Callable[[], str]:
    def read() -> str:
        return value

    return read


def _own_token(where: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StoreError(
            f"{where}: the server's ServiceAccount token {str(path)!r} cannot be read ({exc.strerror})"
        ) from None
