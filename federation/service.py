"""The one place that knows the order: verify -> TokenReview (if asked) -> rate-limit -> authorize -> read.

``api.py`` decodes HTTP into these calls and encodes their answers; nothing here knows Flask.
An ``Audit`` record is filled in as the request goes, so the audit line says how far it got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from federation.authz import RequestedItem, denied_items, grants_of
from federation.config.holder import ConfigHolder
from federation.errors import Forbidden, NotFound, RateLimited, SecretNotFound, Unauthorized
from federation.metrics import Metrics
from federation.ratelimit import RateLimiter
from federation.stores.base import extract
from federation.stores.reader import StoreReader
from federation.tokenreview import TokenReviewer
from federation.tokens import Hints, Identity, TokenVerifier


@dataclass
class Audit:
    """What one request asked and what was decided; logged once per request, never with values."""

    identity: Identity | None = None
    items: Sequence[RequestedItem] = ()
    decision: str = "invalid"
    reason: str | None = None

    def fields(self) -> dict[str, Any]:
        """The audit line's fields."""
        who = self.identity
        return {
            "cluster": who.federation if who else None,
            "subject": who.subject if who else None,
            "pod": who.pod_name if who else None,
            "stores": sorted({item.store for item in self.items}),
            "keys": [item.describe() for item in self.items],
            "decision": self.decision,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Fetched:
    """One requested item and its value."""

    item: RequestedItem
    value: str


@dataclass
class FederationService:
    """Verifies callers and serves their secrets."""

    holder: ConfigHolder
    verifier: TokenVerifier
    reader: StoreReader
    limiter: RateLimiter
    metrics: Metrics
    reviewer: TokenReviewer | None = None

    def authenticate(self, token: str | None, hints: Hints, audit: Audit) -> Identity:
        """Verify the bearer token and apply the rate limit of its (cluster, subject)."""
        audit.decision = "unauthenticated"
        if not token:
            raise Unauthorized("no bearer token")
        config = self.holder.current
        try:
            identity = self.verifier.verify(token, config, hints)
            # Known from here on, so that a token its cluster refuses is audited with its subject.
            audit.identity = identity
            if self.reviewer is not None:
                self.reviewer.confirm(token, identity, config)
        except Unauthorized as exc:
            audit.reason = exc.reason
            raise
        wait = self.limiter.acquire((identity.federation, identity.subject))
        if wait:
            audit.decision = "rate_limited"
            self.metrics.rate_limited.inc()
            raise RateLimited(f"more than the allowed requests per second for {identity.subject}", wait)
        audit.decision = "authenticated"
        return identity

    def fetch(self, identity: Identity, items: Sequence[RequestedItem], audit: Audit) -> list[Fetched]:
        """All requested values in request order, or an error naming every denied or missing item."""
        audit.items = items
        denied = denied_items(identity, self.holder.current.grants, items)
        if denied:
            audit.decision = "denied"
            raise Forbidden("not granted: " + ", ".join(item.describe() for item in denied))
        audit.decision = "error"
        data_by_key: dict[tuple[str, str], Any] = {}
        missing: list[RequestedItem] = []
        for store, key in dict.fromkeys((item.store, item.key) for item in items):
            try:
                data_by_key[(store, key)] = self.reader.read(store, key)
            except NotFound:
                continue
        fetched = []
        for item in items:
            data = data_by_key.get((item.store, item.key))
            try:
                if data is None:
                    raise SecretNotFound(item.describe())
                fetched.append(Fetched(item, extract(data, item.key, item.property)))
            except SecretNotFound:
                missing.append(item)
        if missing:
            audit.decision = "not_found"
            raise NotFound("not found: " + ", ".join(item.describe() for item in missing))
        audit.decision = "allowed"
        return fetched

    def permissions(self, identity: Identity) -> list[dict[str, Any]]:
        """What ``identity`` may read: each applicable grant's stores and key patterns."""
        return [
            {
                "authorization": grant.name,
                "stores": sorted(grant.stores),
                "secrets": list(grant.secret_patterns) if grant.secret_patterns is not None else ["*"],
            }
            for grant in grants_of(identity, self.holder.current.grants)
        ]
