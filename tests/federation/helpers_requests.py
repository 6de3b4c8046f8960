"""Small helpers shared by the federation server's tests: requests over TLS and common bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from tests.helpers_stack import FederationStack

PASSWORD = {"store": "vault-prod", "key": "db-credentials", "property": "password"}
SERVICE_A = {"store": "vault-prod", "key": "api-keys", "property": "service-a-token"}
TEAM_READER = "system:serviceaccount:monitoring:team-a-reader"
SECRETS_READER = "system:serviceaccount:monitoring:k8s-reader"
USERNAME = {"store": "vault-prod", "key": "db-credentials", "property": "username"}


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made_token(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    """A compact JWS built by hand, for tokens PyJWT refuses to make (``none``, HS256 with a public key)."""
    encode = lambda value: b64url(json.dumps(value, separators=(",", ":")).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}.{b64url(signature)}"


def hs256_token(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    """An HS256 token signed with ``secret`` (e.g. an RSA public key PEM: algorithm confusion)."""
    unsigned = hand_made_token(header, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode("ascii"), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def post_secrets(
    stack: FederationStack,
    token: str | None,
    body: Any = None,
    *,
    secrets: Sequence[Mapping[str, Any]] = (PASSWORD,),
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    session: requests.Session | None = None,
) -> requests.Response:
    """POST /v1/secrets over TLS; ``body`` defaults to ``{"secrets": secrets}``."""
    sent_headers = {"Content-Type": "application/json"}
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    sent_headers.update(headers or {})
    payload = data if data is not None else json.dumps({"secrets": list(secrets)} if body is None else body)
    return (session or requests).post(
        stack.url + "/v1/secrets",
        data=payload,
        headers=sent_headers,
        verify=str(stack.server_ca_file),
        timeout=15,
    )


def get(stack: FederationStack, path: str, token: str | None = None) -> requests.Response:
    """GET ``path`` over TLS, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(stack.url + path, headers=headers, verify=str(stack.server_ca_file), timeout=15)


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples of ``name`` (with at least ``labels``) in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total


def register(stack: FederationStack, filename: str, *documents: Mapping[str, Any]) -> None:
    """Write a manifest file and wait until the server has loaded it."""
    since = stack.reload_count()
    stack.write(filename, *documents)
    stack.wait_for_reload(since)
