"""Helpers for the vault provider's tests: stores, configurations, JWTs and a TokenReview endpoint.

Test modules start their own OpenBao (``hack.openbao.running_openbao``) in a module-scoped fixture
and build providers with ``vault_provider``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.settings import Settings
from federation.stores import vault
from hack.openbao import TlsFiles
from tests.helpers_http import send_json

NAMESPACE = "external-secrets"


@dataclass
class ConfigSource:
    """Builds the configuration snapshot a provider is built from (``source()``)."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    stores: dict[str, StoreConfig] = field(default_factory=dict)

    def __call__(self) -> Configuration:
        kube = {
            (NAMESPACE, name): KubeSecret(NAMESPACE, name, {k: v.encode() for k, v in data.items()})
            for name, data in self.secrets.items()
        }
        return Configuration(stores=dict(self.stores), secrets=kube, source="test")


def secret_ref(name: str, key: str) -> dict[str, str]:
    """An ESO SecretKeySelector into the test namespace."""
    return {"name": name, "namespace": NAMESPACE, "key": key}


def vault_provider(
    server: str,
    auth: Mapping[str, Any],
    source: ConfigSource | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.monotonic,
    **spec: Any,
) -> vault.VaultProvider:
    """A provider for a ``vault`` store with ``spec`` (``path``, ...), built as the registry does."""
    store = StoreConfig("vault-test", "vault", {"server": server, "auth": dict(auth), **spec})
    return vault.build(store, (source or ConfigSource())(), settings or Settings(), clock=clock)


class FakeClock:
    """A monotonic clock that tests move forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class ServiceAccount:
    """A client ServiceAccount: its token is what the provider logs in with."""

    namespace: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


class Signer:
    """An RSA key pair made at run time that signs JWTs shaped like projected ServiceAccount tokens."""

    def __init__(self, issuer: str = "https://kubernetes.default.svc.cluster.local") -> None:
        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def token(self, account: ServiceAccount, audience: str = "vault", lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account.username,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "kubernetes.io": {
                "namespace": account.namespace,
                "serviceaccount": {"name": account.name, "uid": account.uid},
            },
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "test"})


@dataclass
class TokenReviewServer:
    """Answers ``POST /apis/authentication.k8s.io/v1/tokenreviews`` over TLS on 127.0.0.1, as an API
    server does: tokens in ``accounts`` are authenticated as that ServiceAccount, others are not."""

    tls: TlsFiles
    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    reviews: list[str] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def running(self) -> Iterator[TokenReviewServer]:
        """Serve until the block ends."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        review_server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                    self.send_error(404)
                    return
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                token = review["spec"]["token"]
                review_server.reviews.append(token)
                account = review_server.accounts.get(token)
                status: dict[str, Any] = {"authenticated": False}
                if account is not None:
                    status = {
                        "authenticated": True,
                        "user": {
                            "username": account.username,
                            "uid": account.uid,
                            "groups": [
                                "system:serviceaccounts",
                                f"system:serviceaccounts:{account.namespace}",
                            ],
                        },
                        # An API server answers with the asked audiences that the token holds.
                        "audiences": review["spec"].get("audiences") or [],
                    }
                send_json(self, 201, {**review, "status": status})

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the default writes every request to stderr."""

        return Handler
