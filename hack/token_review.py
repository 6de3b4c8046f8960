"""The TokenReview answer of the stand-in client cluster (``authentication.k8s.io/v1``).

A real API server authenticates a ServiceAccount token by its signature, its claims, and the
objects it is bound to: once the pod is deleted, its tokens stop authenticating although they still
verify offline. ``review`` does the same against a ``TokenIssuer`` and a set of deleted pods, and
returns the ``status`` of a ``TokenReview``. Pure: no I/O; ``hack.client_issuer`` serves it at
``POST /apis/authentication.k8s.io/v1/tokenreviews``.

Unlike a real API server, the answer echoes ``spec.token`` as an empty string, never the token,
and old Secret-based tokens (no ``exp``) are never authenticated.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import jwt

from hack.sa_tokens import TokenIssuer

API_VERSION = "authentication.k8s.io/v1"
EXTRA_PREFIX = "authentication.kubernetes.io/"
INVALID_TOKEN = "invalid bearer token"


def review(
    tokens: TokenIssuer,
    token: str,
    audiences: Sequence[str] | None,
    deleted_pods: Collection[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The ``status`` of a TokenReview of ``token``.

    ``audiences`` is ``spec.audiences``: the token must hold one of them; absent, the API server's
    own audience (its issuer) is required, as kube-apiserver does. ``deleted_pods`` holds
    ``(namespace, pod name)`` of pods that no longer exist.
    """
    wanted = list(audiences) if audiences else [tokens.issuer]
    try:
        claims = _verified_claims(tokens, token)
    except jwt.PyJWTError:
        return _refused(INVALID_TOKEN)
    held = claims.get("aud") or []
    held = [held] if isinstance(held, str) else held
    matched = [audience for audience in wanted if audience in held]
    if not matched:
        return _refused("token audiences do not match the requested audiences")
    bound = claims.get("kubernetes.io") or {}
    pod = bound.get("pod") or {}
    if pod and (bound.get("namespace"), pod.get("name")) in deleted_pods:
        return _refused(f"pod {pod.get('name')!r} of the token no longer exists")
    return {"authenticated": True, "user": _user(claims), "audiences": matched}


def token_review(status: dict[str, Any], audiences: Sequence[str] | None) -> dict[str, Any]:
    """A whole ``TokenReview`` object around ``status``; ``spec.token`` is echoed empty, never the token."""
    spec: dict[str, Any] = {"token": ""}
    if audiences:
        spec["audiences"] = list(audiences)
    return {
        "kind": "TokenReview",
        "apiVersion": API_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def _verified_claims(tokens: TokenIssuer, token: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token).get("kid")
    published = {key.kid: key for key in tokens.keys}
    if kid not in published:
        raise jwt.InvalidKeyError("unknown kid")
    key = published[kid]
    return dict(
        jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.algorithm],
            issuer=tokens.issuer,
            options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
        )
    )


def _user(claims: dict[str, Any]) -> dict[str, Any]:
    bound = claims.get("kubernetes.io") or {}
    namespace = bound.get("namespace", "")
    extra: dict[str, list[str]] = {}
    if claims.get("jti"):
        extra[EXTRA_PREFIX + "credential-id"] = [f"JTI={claims['jti']}"]
    for kind in ("node", "pod"):
        for field in ("name", "uid"):
            value = (bound.get(kind) or {}).get(field)
            if value:
                extra[f"{EXTRA_PREFIX}{kind}-{field}"] = [value]
    return {
        "username": claims["sub"],
        "uid": (bound.get("serviceaccount") or {}).get("uid", ""),
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
        "extra": extra,
    }


def _refused(error: str) -> dict[str, Any]:
    return {"authenticated": False, "user": {}, "error": error}
