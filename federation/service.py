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

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from federation.authz import RequestedItem, denied_items, grants_of, may_revoke_states
from federation.config.holder import ConfigHolder
from federation.config.model import Configuration
from federation.errors import (
    BadRequest,
    FederationError,
    Forbidden,
    NotFound,
    RateLimited,
    SecretNotFound,
    StoreError,
    Unauthorized,
    Unavailable,
)
from federation.generators.issuance import Credentials, Issued
from federation.generators.leases import Owner
from federation.generators.model import NAME as OWNER_NAME
from federation.generators.model import GeneratorRef
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
    value: str = field(repr=False)


@dataclass(frozen=True)
class Permission:
    """One grant that applies to a caller: its stores and key patterns, the generators it may use and
    the namespaces in which it may revoke others' generated credentials."""

    authorization: str
    stores: tuple[str, ...]
    secrets: tuple[str, ...]
    generators: tuple[GeneratorRef, ...] = ()
    generator_states: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one request asked, what was decided, and the answer (``value``) or the ``error`` to send.

    Never holds a secret value outside ``value``; ``audit_fields`` is what the audit line logs.
    """

    decision: Decision
    value: T | None = field(default=None, repr=False)
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

    def answer_or_none(self) -> T | None:
        """Like ``answer``, for requests whose answer is empty (``None``) when allowed."""
        if self.error is not None:
            raise self.error
        return self.value

    def audit_fields(self) -> dict[str, Any]:
        """The audit line's fields (no values, no token)."""
        who = self.identity
        return {
            "cluster": who.federation if who else None,
            "subject": who.subject if who else None,
            "pod": who.pod_name if who else None,
            "stores": sorted({item.store for item in self.items if item.generator is None}),
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
    credentials: Credentials | None = None

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

    def generate(self, token: str | None, body: bytes, ref: GeneratorRef) -> Outcome[dict[str, str]]:
        """``POST /generators/<ns>/<kind>/<name>`` (ESI's route): the whole generated map."""
        request = _Request(self.holder.current)
        hints = _compat_hints(body)

        def steps() -> dict[str, str]:
            identity = self._authenticate(request, token, hints)
            _check_ref(ref)
            request.items = (RequestedItem.of_generator(ref),)
            (issued,) = self._generate(request, identity, [ref])
            return dict(issued.data)

        return self._run(request, steps)

    def revoke_own(self, token: str | None, ref: GeneratorRef) -> Outcome[None]:
        """``DELETE /generators/<ns>/<kind>/<name>``: revoke the caller's own credentials from ``ref``
        (the same pod's; the same subject's when the token names no pod)."""
        request = _Request(self.holder.current)

        def steps() -> None:
            identity = self._authenticate(request, token, Hints())
            _check_ref(ref)
            request.items = (RequestedItem.of_generator(ref),)
            if denied_items(identity, request.config.grants, request.items):
                raise _Refused("denied", Forbidden(f"not granted: generator {ref.describe()}"))
            revoked, failed = self._credentials().revoke_own(request.config, _owner(identity), ref)
            _raise_unrevoked(failed, revoked)

        return self._run(request, steps)

    def revoke_others(self, token: str | None, body: bytes, namespace: str) -> Outcome[int]:
        """``POST /generators/<ns>/revoke`` with ``{"owner", "namespace"}`` (ESI's route): revoke what
        the pod (or ServiceAccount) ``owner`` of the caller's cluster holds from generators of
        ``namespace``; needs ``allowedGeneratorStates`` for it. Answers how many were revoked."""
        request = _Request(self.holder.current)
        document, malformed = _decode(body)

        def steps() -> int:
            identity = self._authenticate(request, token, Hints())
            if malformed is not None:
                raise _Refused("invalid", malformed)
            owner = _revoke_request(document, namespace)
            if not may_revoke_states(identity, request.config.grants, namespace):
                error = Forbidden(f"not granted: revoking generated credentials in namespace {namespace!r}")
                raise _Refused("denied", error)
            revoked, failed = self._credentials().revoke_others(
                request.config, identity.federation, namespace, owner
            )
            _raise_unrevoked(failed, revoked)
            return revoked

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
            self.metrics.rate_limited.labels(identity.federation).inc()
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
        read = [item for item in items if item.generator is None]
        fetched = {id(f.item): f for f in self._read(request, read)}
        # Store items are all there: only now is anything generated, so a 404 leaves nothing behind.
        fetched.update({id(f.item): f for f in self._generated_items(request, identity, items)})
        return [fetched[id(item)] for item in items]

    def _generated_items(
        self, request: _Request, identity: Identity, items: Sequence[RequestedItem]
    ) -> list[Fetched]:
        """The generator items' values: one generation per distinct generator (so a database user
        and its password come from one credential), revoked again when a property is missing."""
        wanted = [item for item in items if item.generator is not None]
        if not wanted:
            return []
        refs = list(dict.fromkeys(item.generator for item in wanted if item.generator is not None))
        issued = dict(zip(refs, self._generate(request, identity, refs), strict=True))
        fetched, missing = [], []
        for item in wanted:
            assert item.generator is not None
            data = issued[item.generator].data
            if item.property is None:
                fetched.append(Fetched(item, json.dumps(dict(data), sort_keys=True)))
            elif item.property in data:
                fetched.append(Fetched(item, data[item.property]))
            else:
                missing.append(item)
        if missing:
            records = [held.record for held in issued.values() if held.record is not None]
            self._credentials().revoke(request.config, records, "batch_failed")
            raise _Refused(
                "not_found", NotFound("not found: " + ", ".join(item.describe() for item in missing))
            )
        return fetched

    def _generate(self, request: _Request, identity: Identity, refs: Sequence[GeneratorRef]) -> list[Issued]:
        denied = [
            ref
            for ref in refs
            if denied_items(identity, request.config.grants, [RequestedItem.of_generator(ref)])
        ]
        if denied:
            error = Forbidden("not granted: " + ", ".join(f"generator {ref.describe()}" for ref in denied))
            raise _Refused("denied", error)
        try:
            return self._credentials().issue(request.config, _owner(identity), refs)
        except NotFound as exc:
            raise _Refused("not_found", NotFound(f"not found: {exc.detail}")) from None
        except FederationError as exc:
            raise _Refused("error", exc) from None

    def _credentials(self) -> Credentials:
        if self.credentials is None:
            raise _Refused("error", Unavailable("this server does not serve generators"))
        return self.credentials

    def _read(self, request: _Request, items: Sequence[RequestedItem]) -> list[Fetched]:
        """The store items' values, or a refusal naming every missing one."""
        config = request.config
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
                tuple(sorted(grant.generators)),
                tuple(sorted(grant.generator_state_namespaces)),
            )
            for grant in grants_of(identity, config.grants)
        ]


def _decode(body: bytes) -> tuple[Any, BadRequest | None]:
    """The JSON document in ``body``, or the 400 to answer once the token is checked."""
    try:
        return decode_json(body), None
    except BadRequest as exc:
        return None, exc


def _owner(identity: Identity) -> Owner:
    """Whom a generated credential belongs to: the token's federation, subject and pod."""
    return Owner(
        identity.federation, identity.subject, identity.namespace, identity.pod_name, identity.pod_uid
    )


def _check_ref(ref: GeneratorRef) -> None:
    problem = ref.problem()
    if problem is not None:
        raise _Refused("invalid", BadRequest(problem))


def _compat_hints(body: bytes) -> Hints:
    """ESI's routes may carry ``{"ca.crt": ...}``; anything else in the body is ignored, as ESI does."""
    if not body:
        return Hints()
    document, _ = _decode(body)
    return Hints(ca_cert=ca_cert_hint(document.get("ca.crt")) if isinstance(document, dict) else None)


def _revoke_request(document: Any, namespace: str) -> str:
    """The ``owner`` of a revoke request; its ``namespace``, when given, must be the route's."""
    if not isinstance(document, dict):
        raise _Refused("invalid", BadRequest("the body must be a JSON object {owner, namespace}"))
    owner, given = document.get("owner"), document.get("namespace")
    if not isinstance(owner, str) or not OWNER_NAME.match(owner):
        raise _Refused("invalid", BadRequest("owner must be the name of a pod (or ServiceAccount)"))
    if given is not None and given != namespace:
        raise _Refused("invalid", BadRequest(f"namespace {given!r} differs from the route's {namespace!r}"))
    return owner


def _raise_unrevoked(failed: int, revoked: int) -> None:
    if failed:
        error = StoreError(
            f"{failed} credential(s) could not be revoked now ({revoked} were); the server keeps trying "
            "until their leases end"
        )
        raise _Refused("error", error)
