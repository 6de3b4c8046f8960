"""Per-federation key sets: fetched over pinned HTTPS, cached, refreshed with care.

Rules (README, security model): keys are refreshed every ``jwks_refresh_interval``; an unknown ``kid``
triggers at most one refresh per ``jwks_unknown_kid_interval``; concurrent refreshes are merged (one
fetch, the others wait for it); a failed refresh keeps the last good keys for up to ``jwks_max_stale``.
Fetches use HTTPS only, the federation's own ``caBundle`` as the only trust anchor (the system store
when absent), no redirects, a 2 s connect and 5 s total timeout and a 256 KiB cap. No URL is ever built
from a token or a request: only from the KubernetesFederation. Keys of different federations are never
pooled, and a key published by two federations is refused in both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping

from federation.config.model import Configuration, Federation
from federation.errors import JwksUnavailable
from federation.jwks_shared import Attempt, AttemptSlot, FileSlot, MemorySlot
from federation.keyset import JwksError, VerificationKey, parse_jwks
from federation.metrics import Metrics
from federation.pinned_https import PinnedRequestError, pinned_request
from federation.settings import Settings

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
# kube-apiserver serves the key set only as application/jwk-set+json and answers 406 to an Accept that
# does not admit it; mirrors and static hosts often label the same document application/json.
JWKS_ACCEPT = "application/jwk-set+json, application/json"
# Every failure to get an answer starts so; status shows only this part (the rest is for the log).
FETCH_FAILED = "the key set could not be fetched"


def fetch_jwks(url: str, ca_bundle: str | None, bearer: str | None, settings: Settings) -> bytes:
    """GET a JWKS over HTTPS, trusting only ``ca_bundle`` (the system store when None)."""
    headers = {"Accept": JWKS_ACCEPT}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        answer = pinned_request(
            "GET", url, ca_bundle=ca_bundle, headers=headers, settings=settings, max_bytes=MAX_JWKS_BYTES
        )
    except PinnedRequestError as exc:
        raise JwksError(f"{FETCH_FAILED}: {exc}") from exc
    if answer.status != 200:
        raise JwksError(f"{FETCH_FAILED}: {url} answered HTTP {answer.status}")
    return answer.body


Fetcher = Callable[[str, str | None, str | None, Settings], bytes]


class FederationKeys:
    """The key cache of one federation."""

    def __init__(
        self,
        federation: Federation,
        bearer: str | None,
        *,
        settings: Settings,
        metrics: Metrics,
        fetcher: Fetcher,
        on_change: Callable[[], None],
        slot: AttemptSlot | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.federation = federation
        self._bearer = bearer
        self._settings = settings
        self._metrics = metrics
        self._fetcher = fetcher
        self._on_change = on_change
        self._slot = slot or MemorySlot()
        self._clock = clock
        self._refresh_lock = threading.Lock()
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._next_due = 0.0
        self.last_error: str | None = None
        if federation.static_jwks is not None:
            self._fetched_at = clock()
            self._next_due = float("inf")
            try:
                self._keys = parse_jwks(federation.static_jwks)
            except (JwksError, RecursionError) as exc:
                # Its own tokens are refused (no key matches); the other federations are not affected.
                self.last_error = _reason(exc)
                log.warning(
                    "static JWKS unusable", extra={"federation": federation.name, "reason": self.last_error}
                )

    @property
    def keys(self) -> Mapping[str, VerificationKey]:
        """The keys held now (possibly stale), without fetching."""
        return self._keys

    @property
    def fetched_at(self) -> float | None:
        """Wall-clock time of the last successful fetch (or of loading a static JWKS)."""
        return self._fetched_at

    def key(self, kid: str) -> VerificationKey | None:
        """The key ``kid``, refreshing when due or (rate-limited) when the kid is unknown."""
        now = self._clock()
        if now >= self._next_due:
            self._refresh(now, unknown_kid=False)
        found = self._keys.get(kid)
        if found is None and self.federation.static_jwks is None and self._may_refresh_for_unknown_kid(now):
            self._refresh(now, unknown_kid=True)
            found = self._keys.get(kid)
        if found is None and self._fetched_at is None:
            raise JwksUnavailable(f"the keys of federation {self.federation.name!r} are not available")
        return found

    def load_once(self) -> None:
        """Fetch the keys if no fetch was ever attempted (so that other federations can compare keys)."""
        if self._last_attempt is None and self.federation.static_jwks is None:
            self._refresh(self._clock(), unknown_kid=False)

    def _may_refresh_for_unknown_kid(self, now: float) -> bool:
        interval = self._settings.jwks_unknown_kid_interval
        return self._last_attempt is None or now - self._last_attempt >= interval

    def _refresh(self, now: float, *, unknown_kid: bool) -> None:
        with self._refresh_lock, self._slot as slot:
            last = slot.read()
            if last is None or self._needs_fetch(last, now, unknown_kid=unknown_kid):
                last = self._fetch(now, last)
                slot.write(last)
            self._adopt(last, now)
        self._on_change()

    def _needs_fetch(self, last: Attempt, now: float, *, unknown_kid: bool) -> bool:
        # Another thread or worker may have tried while this one waited: then its attempt is used.
        settings = self._settings
        retry_after = (
            settings.jwks_unknown_kid_interval
            if unknown_kid or last.error
            else settings.jwks_refresh_interval
        )
        return now - last.attempted_at >= retry_after

    def _fetch(self, now: float, last: Attempt | None) -> Attempt:
        federation = self.federation
        try:
            body = self._fetcher(
                federation.effective_jwks_url, federation.ca_bundle, self._bearer, self._settings
            )
            document = body.decode("utf-8")
            parse_jwks(_decode(document))
        except (JwksError, ValueError) as exc:
            self._metrics.jwks_fetches.labels(federation.name, "error").inc()
            reason = _reason(exc)
            log.warning("JWKS refresh failed", extra={"federation": federation.name, "reason": reason})
            return Attempt(now, last.fetched_at if last else None, last.document if last else None, reason)
        self._metrics.jwks_fetches.labels(federation.name, "ok").inc()
        return Attempt(now, now, document, None)

    def _adopt(self, attempt: Attempt, now: float) -> None:
        if attempt.document is not None and attempt.fetched_at != self._fetched_at:
            try:
                self._keys, self._fetched_at = parse_jwks(_decode(attempt.document)), attempt.fetched_at
            except JwksError as exc:  # a shared slot damaged by hand: as if never fetched
                log.warning(
                    "recorded JWKS unusable", extra={"federation": self.federation.name, "reason": str(exc)}
                )
        if self._fetched_at is not None and now - self._fetched_at > self._settings.jwks_max_stale:
            self._keys, self._fetched_at = {}, None
        self._last_attempt, self.last_error = attempt.attempted_at, attempt.error
        interval = (
            self._settings.jwks_refresh_interval
            if attempt.error is None
            else self._settings.jwks_unknown_kid_interval
        )
        self._next_due = attempt.attempted_at + interval
        self._metrics.jwks_stale.labels(self.federation.name).set(1 if attempt.error and self._keys else 0)


def _decode(document: str) -> object:
    """The JSON of a JWKS; ``JwksError`` when it is not JSON or nests deeper than the parser can go."""
    try:
        return json.loads(document)
    except ValueError:
        raise JwksError("the JWKS is not JSON") from None
    except RecursionError:
        raise JwksError("the JWKS is nested too deeply") from None


def _reason(exc: Exception) -> str:
    return "the JWKS is nested too deeply" if isinstance(exc, RecursionError) else str(exc)


class JwksRegistry:
    """Every federation's ``FederationKeys``, rebuilt when a federation's definition changes.

    Each call names the configuration snapshot its request is decided under: the bearer token of a
    federation and the set of federations that must not share a key are read from that snapshot only.
    """

    def __init__(self, settings: Settings, metrics: Metrics, fetcher: Fetcher = fetch_jwks) -> None:
        self._settings = settings
        self._metrics = metrics
        self._fetcher = fetcher
        self._lock = threading.Lock()
        self._caches: dict[str, tuple[str, FederationKeys]] = {}
        self._owners: dict[str, frozenset[str]] = {}
        self._loaded_for: Configuration | None = None

    def for_federation(self, federation: Federation, config: Configuration) -> FederationKeys:
        """The cache of ``federation`` of ``config``, created on first use or when its definition changed."""
        held = self._caches.get(federation.name)
        if held is not None and held[1].federation is federation:
            return held[1]  # the same configuration snapshot: nothing can have changed
        bearer = self._bearer(federation, config)
        identity = json.dumps([repr(federation), hashlib.sha256((bearer or "").encode()).hexdigest()])
        with self._lock:
            held = self._caches.get(federation.name)
            if held is not None and held[0] == identity:
                held[1].federation = federation
                return held[1]
        shared = self._settings.shared_state_dir
        stem = "jwks-" + hashlib.sha256(identity.encode()).hexdigest()[:32]
        cache = FederationKeys(
            federation,
            bearer,
            settings=self._settings,
            metrics=self._metrics,
            fetcher=self._fetcher,
            on_change=self._reindex,
            slot=FileSlot(shared, stem) if shared is not None else MemorySlot(),
        )
        with self._lock:
            self._caches[federation.name] = (identity, cache)
        self._reindex()
        return cache

    def key(self, config: Configuration, federation: Federation, kid: str) -> VerificationKey | None:
        """The verification key ``kid`` of ``federation``, or None; a key shared with another federation of
        ``config`` is refused in both (see docs/architecture.md, "Tokens")."""
        self._start_first_fetches(config)
        key = self.for_federation(federation, config).key(kid)
        if key is None:
            return None
        self._await_same_issuer(config, federation)
        owners = self._owners.get(key.thumbprint, frozenset())
        if len(owners) > 1:
            log.error(
                "a key is published by several federations; refusing it in all of them",
                extra={"federations": sorted(owners), "kid": kid},
            )
            return None
        return key

    def _start_first_fetches(self, config: Configuration) -> None:
        # A duplicate can only be seen once every federation's keys are known, not just the candidates'.
        # Those first fetches run in a background thread, once per configuration object: a request
        # fetches its own federation's keys itself, so a slow or hostile client cluster never delays
        # requests for another one.
        with self._lock:
            if self._loaded_for is config:
                return
            self._loaded_for = config
            for gone in set(self._caches) - set(config.federations):
                del self._caches[gone]
        loader = threading.Thread(
            target=self._load_all, args=(config,), name="jwks-first-fetches", daemon=True
        )
        loader.start()

    def _load_all(self, config: Configuration) -> None:
        for federation in config.federations.values():
            try:
                self.for_federation(federation, config).load_once()
            except Exception:
                log.exception("first JWKS fetch failed", extra={"federation": federation.name})
        self._reindex()

    def _await_same_issuer(self, config: Configuration, federation: Federation) -> None:
        # Federations sharing the issuer are candidates for the same tokens, so their keys decide too;
        # their first fetches already run in the background, and waiting here merges with them.
        for other in config.federations.values():
            if other.issuer == federation.issuer and other.name != federation.name:
                self.for_federation(other, config).load_once()

    def preload(self, config: Configuration) -> None:
        """Start the first fetches of every federation of ``config`` in the background (once per
        configuration), so that status can report keys before any request came."""
        self._start_first_fetches(config)

    def sharing(self, name: str) -> list[str]:
        """The other federations that publish a key federation ``name`` publishes too (sorted)."""
        others: set[str] = set()
        for owners in self._owners.values():
            if name in owners and len(owners) > 1:
                others |= owners - {name}
        return sorted(others)

    def status(self, name: str) -> FederationKeys | None:
        """The cache of federation ``name`` if one exists (for status reporting)."""
        held = self._caches.get(name)
        return held[1] if held else None

    def _bearer(self, federation: Federation, config: Configuration) -> str | None:
        if federation.token_secret_ref is None:
            return None
        value = config.secret_value(federation.token_secret_ref)
        return value.decode().strip() if value else None

    def _reindex(self) -> None:
        with self._lock:
            owners: dict[str, set[str]] = {}
            for name, (_, cache) in self._caches.items():
                for key in cache.keys.values():
                    owners.setdefault(key.thumbprint, set()).add(name)
            self._owners = {thumb: frozenset(names) for thumb, names in owners.items()}
            duplicates: dict[str, int] = {}
            for names in self._owners.values():
                if len(names) > 1:
                    for name in names:
                        duplicates[name] = duplicates.get(name, 0) + 1
            for name in self._caches:
                self._metrics.jwks_duplicate_keys.labels(name).set(duplicates.get(name, 0))
