"""HTTPS to a store's server (Vault, a remote cluster's API server): trust, client certificates, session.

- ``ca_pem``: the CAs of ``caBundle`` (base64 of PEM) and ``caProvider`` (a Secret's or a ConfigMap's
  key), as ESO's stores write them; only these are trusted when set.
- ``https_session``: a ``requests.Session`` that reads the environment (proxies, CA bundle) once, trusts
  those CAs through a file (requests verifies against files; the file holds public certificates only and
  goes with its owner), and presents a client certificate held in an ``SSLContext``: the key is written
  to a private temporary directory only for as long as Python needs to load it. Each call of the session
  ends within a deadline (``deadline.py``), however slowly the server answers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from federation.config.model import CONFIG_MAP, SECRET, Configuration, SecretKeyRef
from federation.errors import StoreError
from federation.stores.deadline import DeadlineSession, WatchedAdapter


def ca_pem(where: str, spec: Mapping[str, Any], snapshot: Configuration) -> bytes | None:
    """The PEM of ``caBundle`` plus ``caProvider``; None when neither is set."""
    pems = []
    if spec.get("caBundle") is not None:
        try:
            pems.append(base64.b64decode(str(spec["caBundle"]), validate=True))
        except (binascii.Error, ValueError):
            raise StoreError(f"{where}: caBundle must be the base64 of PEM certificates") from None
    provider = spec.get("caProvider")
    if provider is not None:
        pems.append(_ca_from_provider(where, provider, snapshot))
    if any(b"-----BEGIN CERTIFICATE-----" not in pem for pem in pems):
        raise StoreError(f"{where}: the CA given by caBundle/caProvider holds no PEM certificate")
    return b"\n".join(pems) if pems else None


def _ca_from_provider(where: str, provider: Any, snapshot: Configuration) -> bytes:
    if not isinstance(provider, dict) or provider.get("type") not in (SECRET, CONFIG_MAP):
        raise StoreError(f"{where}: caProvider needs type (Secret or ConfigMap), name, namespace and key")
    kind = str(provider["type"])
    parts = [provider.get(part) for part in ("name", "namespace", "key")]
    if not all(isinstance(part, str) and part for part in parts):
        raise StoreError(f"{where}: caProvider ({kind}) needs name, namespace and key")
    name, namespace, key = (str(part) for part in parts)
    ref = SecretKeyRef(name, namespace, key, kind)
    value = snapshot.secret_value(ref)
    if value is None:
        raise StoreError(f"{where}: caProvider {ref.describe()} does not exist")
    return value


def client_tls_context(where: str, pair: tuple[bytes, bytes]) -> ssl.SSLContext:
    """An ``SSLContext`` holding a client certificate and its key (PEM). Python loads them only from
    files: they are written to a private temporary directory and removed at once."""
    context = ssl.create_default_context()
    with tempfile.TemporaryDirectory(prefix="esi-store-client-") as directory:
        cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
        for path, pem in ((cert_file, pair[0]), (key_file, pair[1])):
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                file.write(pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError:
            raise StoreError(
                f"{where}: the client certificate and key do not load (not PEM, an encrypted key, or a "
                "key that is not the certificate's)"
            ) from None
    return context


class _ClientCertAdapter(WatchedAdapter):
    """Connections that present a client certificate, held in an ``SSLContext`` (never in a file)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def https_session(
    owner: object,
    where: str,
    server: str,
    ca: bytes | None,
    client_cert: tuple[bytes, bytes] | None,
    *,
    deadline: float,
) -> tuple[requests.Session, str | None]:
    """A session for ``server`` whose calls each end within ``deadline`` seconds, and the CA file it
    verifies with (removed when ``owner`` is gone: a request still running after the owner closed may
    need it to open a connection)."""
    ca_file = _write_ca_file(ca) if ca else None
    if ca_file is not None:
        weakref.finalize(owner, _remove_file, ca_file)
    session = DeadlineSession(deadline)
    # The environment (proxies, REQUESTS_CA_BUNDLE) is read once here: requests would read it again
    # on every request, which costs about a third of a read's time.
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(server)
    session.verify = ca_file or _environment_ca_bundle() or True
    if client_cert is not None:
        session.mount("https://", _ClientCertAdapter(client_tls_context(where, client_cert)))
    return session, ca_file


def _environment_ca_bundle() -> str | None:
    """The CA bundle requests would take from the environment when no CA is configured."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_ca_file(pem: bytes) -> str:
    handle, name = tempfile.mkstemp(prefix="esi-store-ca-", suffix=".pem")
    with os.fdopen(handle, "wb") as file:
        file.write(pem)
    return name
