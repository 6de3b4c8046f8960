"""The one place that knows the order of a request's checks, and the one that decides it.

verify -> TokenReview (if asked) -> rate-limit -> check the body -> authorize -> read. Each request
takes ONE configuration snapshot when it starts and every step is decided under it: the verifier, the
key source, the TokenReview, the grants and the store registry all receive that snapshot, so a reload
in the middle of a request cannot verify a token under one configuration and authorize it under
another (docs/architecture.md, "One snapshot per request").

``api.py`` decodes HTTP into these calls and encodes the ``Outcome`` they return; nothing here knows
Flask. The outcome says how far the request got (its ``decision``), which the audit line logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from federation.authz import RequestedItem, denied_items, grants_of
from federation.config.holder import ConfigHolder
from federation.config.model import Configuration
from federation.errors import (
    BadRequest,
    FederationError,
    Forbidden,
    NotFound,
    RateLimited,
    SecretNotFound,
    Unauthorized,
)
from federation.metrics import Metrics
from federation.ratelimit import RateLimiter
from federation.stores.base import extract
from federation.stores.reader import StoreReader
from federation.tokenreview import TokenReviewer
from federation.tokens import Hints, Identity, TokenVerifier, parse_compact
from federation.wire import ca_cert_hint, decode_json, hints_of, parse_secrets_request

Decision = Literal["invalid", "unauthenticated", "rate_limited", "denied", "not_found", "error", "allowed"]
"""How far a request got: the audit line's ``decision`` and the label of the decisions metric."""

T = TypeVar("T")


@dataclass(frozen=True)
class Fetched:
    """One requested item and its value."""

    item: RequestedItem
    value: str


@dataclass(frozen=True)
class Permission:
    """One grant that applies to a caller: its stores and key patterns."""

    authorization: str
    stores: tuple[str, ...]
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one request asked, what was decided, and the answer (``value``) or the ``error`` to send.

    Never holds a secret value outside ``value``; ``audit_fields`` is what the audit line logs.
    """

    decision: Decision
    value: T | None = None
    error: FederationError | None = None
    identity: Identity | None = None
    items: Sequence[RequestedItem] = ()
    reason: str | None = None
    config: Configuration | None = field(default=None, repr=False, compare=False)

    def answer(self) -> T:
        """The value of an allowed request; raises the error of a refused one."""
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value

    def audit_fields(self) -> dict[str, Any]:
        """The audit line's fields (no values, no token)."""
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


class _Refused(Exception):
    """A step's refusal: the decision it leads to and the error to answer with."""

    def __init__(self, decision: Decision, error: FederationError, reason: str | None = None) -> None:
        super().__init__(decision)
        self.decision = decision
        self.error = error
        self.reason = reason


@dataclass
class _Request:
    """What one request has established so far; becomes its ``Outcome``."""

    config: Configuration
    identity: Identity | None = None
    items: Sequence[RequestedItem] = ()

    def outcome(
        self, decision: Decision, value: T | None = None, refused: _Refused | None = None
    ) -> Outcome[T]:
        return Outcome(
            decision,
            value,
            refused.error if refused else None,
            self.identity,
            self.items,
            refused.reason if refused else None,
            self.config,
        )


@dataclass
class FederationService:
    """Verifies callers and serves their secrets."""

    holder: ConfigHolder
    verifier: TokenVerifier
    reader: StoreReader
    limiter: RateLimiter
    metrics: Metrics
    reviewer: TokenReviewer | None = None

    def secrets(self, token: str | None, body: bytes) -> Outcome[tuple[Identity, list[Fetched]]]:
        """``POST /v1/secrets``: the caller and every requested value, in request order.

        The body is checked after the token (a caller without a valid token learns nothing about
        what a valid body looks like), then every item is authorized before any store is read.
        """
        request = _Request(self.holder.current)
        document, malformed = _decode(body)

        def steps() -> tuple[Identity, list[Fetched]]:
            identity = self._authenticate(request, token, hints_of(document))
            if malformed is not None:
                raise _Refused("invalid", malformed)
            try:
                parsed = parse_secrets_request(document)
            except BadRequest as exc:
                raise _Refused("invalid", exc) from None
            request.items = parsed.items
            return identity, self._fetch(request, identity, parsed.items)

        return self._run(request, steps)

    def secret(self, token: str | None, body: bytes, item: RequestedItem) -> Outcome[str]:
        """The ESO webhook-provider route: one value; the body carries only an optional ``ca.crt``."""
        request = _Request(self.holder.current)
        document, malformed = _decode(body)
        hints = Hints(ca_cert=ca_cert_hint(document.get("ca.crt")) if isinstance(document, dict) else None)

        def steps() -> str:
            identity = self._authenticate(request, token, hints)
            if malformed is not None:
                raise _Refused("invalid", malformed)
            request.items = (item,)
            return self._fetch(request, identity, request.items)[0].value

        return self._run(request, steps)

    def whoami(self, token: str | None) -> Outcome[tuple[Identity, list[Permission]]]:
        """``GET /v1/whoami``: who the token belongs to and what each applicable grant allows."""
        request = _Request(self.holder.current)

        def steps() -> tuple[Identity, list[Permission]]:
            identity = self._authenticate(request, token, Hints())
            return identity, self._permissions(request.config, identity)

        return self._run(request, steps)

    def _run(self, request: _Request, steps: Callable[[], T]) -> Outcome[T]:
        try:
            value = steps()
        except _Refused as refused:
            return request.outcome(refused.decision, refused=refused)
        return request.outcome("allowed", value)

    def _authenticate(self, request: _Request, token: str | None, hints: Hints) -> Identity:
        """Verify the bearer token (decoded once) and apply the rate limit of its (cluster, subject)."""
        config = request.config
        try:
            if not token:
                raise Unauthorized("no bearer token")
            identity = self.verifier.verify(parse_compact(token), config, hints)
            # Known from here on, so that a token its cluster refuses is audited with its subject.
            request.identity = identity
            if self.reviewer is not None:
                self.reviewer.confirm(token, identity, config)
        except Unauthorized as exc:
            raise _Refused("unauthenticated", exc, exc.reason) from None
        except FederationError as exc:
            raise _Refused("unauthenticated", exc) from None
        wait = self.limiter.acquire((identity.federation, identity.subject))
        if wait:
            self.metrics.rate_limited.inc()
            error = RateLimited(f"more than the allowed requests per second for {identity.subject}", wait)
            raise _Refused("rate_limited", error)
        return identity

    def _fetch(self, request: _Request, identity: Identity, items: Sequence[RequestedItem]) -> list[Fetched]:
        """All requested values in request order, or a refusal naming every denied or missing item."""
        config = request.config
        denied = denied_items(identity, config.grants, items)
        if denied:
            error = Forbidden("not granted: " + ", ".join(item.describe() for item in denied))
            raise _Refused("denied", error)
        data_by_key: dict[tuple[str, str], Any] = {}
        missing: list[RequestedItem] = []
        try:
            for store, key in dict.fromkeys((item.store, item.key) for item in items):
                try:
                    data_by_key[(store, key)] = self.reader.read(config, store, key)
                except NotFound:
                    continue
        except FederationError as exc:
            raise _Refused("error", exc) from None
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
            raise _Refused(
                "not_found", NotFound("not found: " + ", ".join(item.describe() for item in missing))
            )
        return fetched

    @staticmethod
    def _permissions(config: Configuration, identity: Identity) -> list[Permission]:
        return [
            Permission(
                grant.name,
                tuple(sorted(grant.stores)),
                tuple(grant.secret_patterns) if grant.secret_patterns is not None else ("*",),
            )
            for grant in grants_of(identity, config.grants)
        ]


def _decode(body: bytes) -> tuple[Any, BadRequest | None]:
    """The JSON document in ``body``, or the 400 to answer once the token is checked."""
    try:
        return decode_json(body), None
    except BadRequest as exc:
        return None, exc
