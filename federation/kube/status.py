"""Kubernetes mode: write the ``status`` of KubernetesFederations and Authorizations.

What is written (through the ``status`` subresource, as a JSON merge patch):

- ``KubernetesFederation``: ``conditions[Ready]`` (True when its key set is held; False with the reason:
  a configuration problem, keys not fetched, the last fetch's error), ``keys`` (the key set in use:
  ``kid``, ``kty``, ``alg``, ``thumbprint`` of each key, as the CRD's schema has it: the key count is
  its length), ``lastRefreshTime`` (the last successful JWKS fetch).
- ``Authorization``: ``conditions[Ready]``, False when it names a KubernetesFederation or a store that
  does not exist, or an issuer that is not its federation's (the same findings as ``esi-federation
  check``), or when the configuration it is part of was rejected.

Only the holder of the status Lease writes (``kube.lease``), and only when what it would write
differs from what the object already shows: the writes are idempotent and rare. The decisions are pure
functions of the configuration in force and the key caches; ``StatusWriter`` does the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from federation.config.check import find_problems
from federation.config.holder import ConfigHolder
from federation.config.model import Configuration, StoreConfig
from federation.config.parse import AUTHORIZATION_API, FEDERATION_API
from federation.jwks import FETCH_FAILED, JwksRegistry
from federation.keyset import VerificationKey
from federation.kube.api import KubeApi, KubeApiError, field_map
from federation.kube.lease import Lease, default_namespace, worker_identity
from federation.settings import Settings
from federation.stores.registry import store_problem

log = logging.getLogger(__name__)

READY = "Ready"


@dataclass(frozen=True)
class KeyView:
    """What a federation's key cache holds, for status."""

    keys: tuple[VerificationKey, ...]
    fetched_at: float | None  # wall clock
    last_error: str | None
    shared_with: tuple[str, ...] = ()  # other federations publishing one of these keys


def rfc3339(epoch: float) -> str:
    """A Kubernetes ``Time`` (seconds precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def problems_of(problems: Sequence[str], kind: str, name: str) -> list[str]:
    """The problems, among ``problems``, that are about ``kind name`` (they start with its name)."""
    prefix = f"{kind} {name}"
    return [p for p in problems if p.startswith((prefix + ":", prefix + " "))]


def operator_message(error: str) -> str:
    """What status says about a key set problem: what is wrong with the document verbatim, but for a
    fetch that got no good answer only that it failed. Whoever may create a federation must not learn
    from its status how cluster-main's network answers an address (refused, TLS, HTTP status)."""
    if error.startswith(FETCH_FAILED):
        return (
            f"{FETCH_FAILED} from the federation's URL; the server's log has the reason (JWKS refresh failed)"
        )
    return error


def key_entry(key: VerificationKey) -> dict[str, str]:
    """One ``status.keys`` entry: public identifiers only."""
    entry = {"kid": key.kid, "kty": "RSA" if isinstance(key.public_key, rsa.RSAPublicKey) else "EC"}
    if len(key.algorithms) == 1:
        entry["alg"] = next(iter(key.algorithms))
    entry["thumbprint"] = key.thumbprint
    return entry


def condition(status: bool, reason: str, message: str) -> dict[str, Any]:
    """A ``Ready`` condition (without ``lastTransitionTime``, added when written)."""
    return {
        "type": READY,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:1000],
    }


def rejected_status(kind: str, name: str, rejected: Sequence[str]) -> dict[str, Any]:
    """Status of an object that is not in the configuration in force because its batch was rejected
    (with this object's own problems if it has any)."""
    mine = problems_of(rejected, kind, name)
    message = "; ".join(mine) or "not loaded: the configuration change it belongs to was rejected"
    return {"conditions": [condition(False, "Rejected", message)]}


def federation_status(
    name: str, config: Configuration, problems: Sequence[str], rejected: Sequence[str], view: KeyView | None
) -> dict[str, Any]:
    """The desired status of KubernetesFederation ``name``."""
    if name not in config.federations:
        refused = problems_of(config.ignored, "KubernetesFederation", name)
        if refused and not rejected:
            return {"conditions": [condition(False, "Refused", "; ".join(refused))]}
        return rejected_status("KubernetesFederation", name, rejected)
    keys = sorted(view.keys, key=lambda k: k.kid) if view else []
    status: dict[str, Any] = {
        "keys": [key_entry(k) for k in keys],
        "lastRefreshTime": rfc3339(view.fetched_at) if view and view.fetched_at else None,
    }
    mine = problems_of(problems, "KubernetesFederation", name)
    if mine:
        ready = condition(False, "InvalidConfiguration", "; ".join(mine))
    elif view and view.shared_with:
        others = ", ".join(view.shared_with)
        message = f"a key is also published by KubernetesFederation {others}: the tokens it signs are refused"
        ready = condition(False, "DuplicateKey", message)
    elif keys:
        note = (
            f"; the last refresh failed: {operator_message(view.last_error)}"
            if view and view.last_error
            else ""
        )
        ready = condition(True, "KeysLoaded", f"{len(keys)} verification keys held{note}")
    else:
        error = view.last_error if view and view.last_error else "the key set has not been fetched yet"
        ready = condition(False, "KeysUnavailable", operator_message(error))
    status["conditions"] = [ready]
    return status


def authorization_status(
    name: str, config: Configuration, problems: Sequence[str], rejected: Sequence[str]
) -> dict[str, Any]:
    """The desired status of Authorization ``name``."""
    if name not in {grant.name for grant in config.grants}:
        return rejected_status("Authorization", name, rejected)
    mine = problems_of(problems, "Authorization", name)
    if mine:
        return {"conditions": [condition(False, "InvalidReference", "; ".join(mine))]}
    return {"conditions": [condition(True, "Valid", "the federation and every store it names exist")]}


def with_transition_times(desired: dict[str, Any], observed: Mapping[str, Any], now: float) -> dict[str, Any]:
    """``desired`` with each condition's ``lastTransitionTime``: kept while its status is unchanged."""
    before = {c.get("type"): c for c in observed.get("conditions") or [] if isinstance(c, dict)}
    conditions = []
    for cond in desired.get("conditions", []):
        previous = before.get(cond["type"])
        same = previous is not None and previous.get("status") == cond["status"]
        stamp = previous.get("lastTransitionTime") if same and previous else None
        conditions.append({**cond, "lastTransitionTime": stamp or rfc3339(now)})
    return {**desired, "conditions": conditions}


def with_generation(desired: dict[str, Any], generation: Any) -> dict[str, Any]:
    """``desired`` with ``observedGeneration`` on each condition, when the object has a generation."""
    if not isinstance(generation, int):
        return desired
    conditions = [{**cond, "observedGeneration": generation} for cond in desired.get("conditions", [])]
    return {**desired, "conditions": conditions}


def needs_write(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    """Whether a field this server writes differs from ``desired`` (transition times aside); fields that
    others may have written are not compared, so they cannot cause a write on every round."""

    def conditions(status: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        ]

    return any(
        (conditions(desired) != conditions(observed))
        if field == "conditions"
        else observed.get(field) != value
        for field, value in desired.items()
    )


def _guarded_store_problem(store: StoreConfig, config: Configuration) -> str | None:
    """``store_problem``, but one store whose validation breaks never stops every other status."""
    try:
        return store_problem(store, config, Settings())
    except Exception:
        log.exception("validating a store failed", extra={"store": store.name})
        return "its provider settings could not be checked (the server's log has the reason)"


class ObservedObjects(Protocol):
    """What the writer reads from the source: the objects as the API server holds them, and why the
    last batch was rejected (empty when it loaded)."""

    @property
    def problems(self) -> Sequence[str]:
        """The problems of the last rejected batch."""

    def observed(self, kind: str) -> Mapping[tuple[str, str], Mapping[str, Any]]:
        """The objects of ``kind`` by (namespace, name)."""


class StatusWriter:
    """Writes status while this worker holds the Lease; woken after each rebuild and every interval."""

    def __init__(
        self,
        api: KubeApi,
        lease: Lease,
        keys: JwksRegistry,
        holder: ConfigHolder,
        source: ObservedObjects,
        *,
        interval: float,
    ) -> None:
        self._api = api
        self.lease = lease
        self._keys = keys
        self._holder = holder
        self._source = source
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.writes = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="kube-status-writer", daemon=True)

    @classmethod
    def for_source(
        cls,
        settings: Settings,
        api: KubeApi,
        keys: JwksRegistry,
        holder: ConfigHolder,
        source: ObservedObjects,
    ) -> StatusWriter:
        """A writer contending for the Lease the settings name."""
        lease = Lease(
            api,
            settings.lease_namespace or default_namespace(),
            settings.lease_name,
            identity=worker_identity(),
            duration=settings.lease_duration,
        )
        # Renew well within the lease's duration, as client-go's leader election does.
        interval = min(settings.status_interval, settings.lease_duration / 3)
        return cls(api, lease, keys, holder, source, interval=interval)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop writing."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        """Wait for the writer thread to end (after ``stop``)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Write soon (the configuration changed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set() or not self._holder.ready:
                continue
            try:
                if self.lease.hold():
                    self.write_all()
            except Exception:
                # Supervised: whatever one object or one round breaks, status is written again next
                # round; a dead writer would leave every status frozen with nobody noticing.
                self.failures += 1
                log.exception("a status round failed; trying again next round")

    def write_all(self) -> None:
        """Write every status that differs from the desired one."""
        config = self._holder.current
        problems = find_problems(config, _guarded_store_problem)
        rejected = list(self._source.problems)
        now = time.time()
        grants = {grant.name for grant in config.grants}
        for (_, name), obj in self._source.observed("KubernetesFederation").items():
            refused = problems_of(config.ignored, "KubernetesFederation", name)
            if name not in config.federations and not rejected and not refused:
                continue  # its change is not loaded yet (a rebuild is pending): nothing to say
            view = self._key_view(config, name)
            self._write(
                FEDERATION_API,
                "kubernetesfederations",
                name,
                obj,
                federation_status(name, config, problems, rejected, view),
                now=now,
            )
        for (_, name), obj in self._source.observed("Authorization").items():
            if name not in grants and not rejected:
                continue
            self._write(
                AUTHORIZATION_API,
                "authorizations",
                name,
                obj,
                authorization_status(name, config, problems, rejected),
                now=now,
            )

    def _write(
        self,
        api_version: str,
        plural: str,
        name: str,
        obj: Mapping[str, Any],
        desired: dict[str, Any],
        *,
        now: float,
    ) -> None:
        desired = with_generation(desired, field_map(obj, "metadata").get("generation"))
        observed = field_map(obj, "status")
        if not needs_write(desired, observed):
            return
        status = with_transition_times(desired, observed, now)
        try:
            self._api.merge_patch(f"/apis/{api_version}/{plural}/{name}/status", {"status": status})
        except KubeApiError as exc:
            log.warning("cannot write status", extra={"resource": f"{plural}/{name}", "reason": str(exc)})
            return
        self.writes += 1

    def _key_view(self, config: Configuration, name: str) -> KeyView | None:
        if name not in config.federations:
            return None
        # The fetches run in the registry's own background thread (started once per configuration),
        # never in this one: a slow or broken key set of one federation never holds up the others'
        # status. Until its first fetch ends, a federation reports its keys as not fetched yet.
        self._keys.preload(config)
        cache = self._keys.status(name)
        if cache is None:
            return None
        return KeyView(
            tuple(cache.keys.values()), cache.fetched_at, cache.last_error, tuple(self._keys.sharing(name))
        )
