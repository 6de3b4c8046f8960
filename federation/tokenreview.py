"""Optional TokenReview: ask the client cluster whether a locally verified token is still valid.

A projected ServiceAccount token keeps verifying offline until it expires, even after its pod is
deleted. A KubernetesFederation with ``spec.tokenReview: {tokenSecretRef}`` makes the server also
POST a ``TokenReview`` to ``{spec.url}/apis/authentication.k8s.io/v1/tokenreviews`` after local
verification succeeded:

- the request authenticates with the REVIEWER token held in the referenced Secret of cluster-main,
  never with the caller's token (which is only the subject of the review, in ``spec.token``);
- ``spec.audiences`` is the federation's accepted audience(s); the answer must say
  ``authenticated: true``, name the same ServiceAccount, and list one of those audiences;
- TLS trusts only the federation's ``caBundle`` (the system store when absent), redirects are not
  followed, timeouts and the size cap are the JWKS fetch's;
- ``authenticated: false`` (or a mismatching answer) is a 401 like any token problem; no answer, a
  non-2xx answer, or a reviewer token that cannot be read is a 503 (fail closed).

Positive answers are cached for ``token_review_cache_ttl`` (10 s by default, never past the token's
``exp``), keyed by a SHA-256 of the federation and the token, so a burst of requests with one token
costs one review. Negative answers are not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from federation.config.model import Configuration, Federation
from federation.errors import Unauthorized, Unavailable
from federation.pinned_https import PinnedRequestError, pinned_request
from federation.settings import Settings
from federation.tokens import Identity

log = logging.getLogger(__name__)

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path, not a secret
MAX_REVIEW_BYTES = 256 * 1024
MAX_CACHED = 10_000


class TokenReviewFailed(Exception):
    """The review could not be had (no answer, an error answer, no reviewer token); safe to log."""


Poster = Callable[[Federation, str, dict[str, Any], Settings], dict[str, Any]]


def post_token_review(
    federation: Federation, reviewer_token: str, body: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """POST ``body`` to the federation's TokenReview API over pinned HTTPS; the decoded answer."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {reviewer_token}",
    }
    try:
        answer = pinned_request(
            "POST",
            federation.url.rstrip("/") + TOKEN_REVIEW_PATH,
            ca_bundle=federation.ca_bundle,
            headers=headers,
            settings=settings,
            max_bytes=MAX_REVIEW_BYTES,
            body=json.dumps(body).encode(),
        )
    except PinnedRequestError as exc:
        raise TokenReviewFailed(f"TokenReview failed: {exc}") from exc
    if answer.status not in (200, 201):
        raise TokenReviewFailed(f"{federation.url} answered the TokenReview with HTTP {answer.status}")
    try:
        document = json.loads(answer.body)
    except ValueError:
        raise TokenReviewFailed("the TokenReview answer is not JSON") from None
    if not isinstance(document, dict):
        raise TokenReviewFailed("the TokenReview answer is not an object")
    return document


def review_request(token: str, audiences: Sequence[str]) -> dict[str, Any]:
    """The ``TokenReview`` to create for ``token``."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": list(audiences)},
    }


def check_review(answer: dict[str, Any], identity: Identity, audiences: Sequence[str]) -> None:
    """Raise ``Unauthorized`` unless the answer authenticates this identity for one of ``audiences``."""
    status = answer.get("status")
    if not isinstance(status, dict) or status.get("authenticated") is not True:
        raise Unauthorized("the client cluster's TokenReview did not authenticate the token")
    user = status.get("user")
    if not isinstance(user, dict) or user.get("username") != identity.subject:
        raise Unauthorized("the client cluster's TokenReview names another user")
    granted = status.get("audiences")
    if not isinstance(granted, list) or not set(audiences) & {a for a in granted if isinstance(a, str)}:
        raise Unauthorized("the client cluster's TokenReview did not confirm an accepted audience")


class TokenReviewer:
    """Confirms locally verified tokens with their cluster's TokenReview API, for federations that ask."""

    def __init__(
        self,
        settings: Settings,
        poster: Poster = post_token_review,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._poster = poster
        self._clock = clock
        self._lock = threading.Lock()
        self._confirmed: dict[str, float] = {}
        self._gates: dict[str, threading.Lock] = {}

    def confirm(self, token: str, identity: Identity, config: Configuration) -> None:
        """Return when the token may be used: no review asked, or a (cached) positive review.

        Raises ``Unauthorized`` (the cluster says no) or ``Unavailable`` (no answer can be had).
        """
        federation = config.federations.get(identity.federation)
        if federation is None or federation.token_review_secret_ref is None:
            return
        key = hashlib.sha256(f"{federation.name}\0{federation.url}\0{token}".encode()).hexdigest()
        if self._cached(key):
            return
        with self._lock:
            gate = self._gates.setdefault(key, threading.Lock())
        # Concurrent requests with one token wait for one review instead of each asking the cluster.
        with gate:
            try:
                if not self._cached(key):
                    self._review(token, identity, federation, config, key)
            finally:
                with self._lock:
                    self._gates.pop(key, None)

    def _cached(self, key: str) -> bool:
        with self._lock:
            return self._confirmed.get(key, 0.0) > self._clock()

    def _review(
        self, token: str, identity: Identity, federation: Federation, config: Configuration, key: str
    ) -> None:
        assert federation.token_review_secret_ref is not None
        held = config.secret_value(federation.token_review_secret_ref)
        secret = held.decode("utf-8", errors="replace").strip() if held else ""
        if not secret:
            log.error("the TokenReview reviewer token is missing", extra={"federation": federation.name})
            raise Unavailable("the client cluster's TokenReview cannot be asked")
        audiences = federation.audiences or (self._settings.audience,)
        now = self._clock()
        try:
            answer = self._poster(federation, secret, review_request(token, audiences), self._settings)
        except TokenReviewFailed as exc:
            log.warning("TokenReview failed", extra={"federation": federation.name, "reason": str(exc)})
            raise Unavailable("the client cluster's TokenReview cannot be reached") from None
        check_review(answer, identity, audiences)
        self._remember(key, now, identity.expires_at)

    def _remember(self, key: str, now: float, expires_at: float | None) -> None:
        until = now + self._settings.token_review_cache_ttl
        if expires_at is not None:
            until = min(until, expires_at)
        with self._lock:
            if len(self._confirmed) >= MAX_CACHED:
                self._confirmed = {k: t for k, t in self._confirmed.items() if t > now}
            if len(self._confirmed) < MAX_CACHED:
                self._confirmed[key] = until
