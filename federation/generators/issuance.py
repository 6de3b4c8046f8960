"""Issuing generated values and taking revocable ones back.

``issue`` makes one value per requested generator, in order, and records every lease before the
value leaves the server. It is all or nothing: when one generator fails, every credential already
made for the same request is revoked at once, so a failed batch leaves nothing behind. A lease that
cannot be recorded is revoked too (a credential that nobody could revoke later is never handed out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from federation.config.model import Configuration
from federation.errors import FederationError, StoreError, Unavailable
from federation.generators.base import Generated, LeaseKeeper
from federation.generators.leases import LeaseRecord, LeaseStore, Owner, new_record_id
from federation.generators.model import GeneratorRef
from federation.generators.registry import GeneratorRegistry
from federation.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Issued:
    """One generated map, and the record of its lease when it has one."""

    ref: GeneratorRef
    data: Mapping[str, str] = field(repr=False)
    record: LeaseRecord | None


class Credentials:
    """Generates for owners, records leases, and revokes them on request."""

    def __init__(
        self,
        registry: GeneratorRegistry,
        store: LeaseStore | None,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.store = store
        self._metrics = metrics
        self._clock = clock

    def issue(self, config: Configuration, owner: Owner, refs: Sequence[GeneratorRef]) -> list[Issued]:
        """One value per reference, in order; on a failure, what was made is revoked and the error raised."""
        issued: list[Issued] = []
        try:
            for ref in refs:
                issued.append(self._issue_one(config, owner, ref))
        except BaseException:
            self.revoke(config, [item.record for item in issued if item.record is not None], "batch_failed")
            raise
        for item in issued:
            self._metrics.credentials_issued.labels(item.ref.kind).inc()
        return issued

    def _issue_one(self, config: Configuration, owner: Owner, ref: GeneratorRef) -> Issued:
        generator = self.registry.generator(config, ref)
        try:
            generated: Generated = generator.generate()
        except FederationError:
            self._metrics.credential_failures.labels("issue").inc()
            raise
        if generated.lease is None:
            return Issued(ref, generated.data, None)
        lease = generated.lease
        keeper = generator if isinstance(generator, LeaseKeeper) else None
        now = self._clock()
        record = LeaseRecord(
            new_record_id(),
            ref,
            owner,
            lease.lease_id,
            now,
            now + lease.duration,
            lease.duration,
            lease.renewable,
        )
        try:
            if self.store is None:
                raise StoreError(
                    f"{ref.describe()} makes revocable credentials, but the server keeps no lease records "
                    "(start it with --state-dir)"
                )
            self.store.put(record)
        except (OSError, StoreError) as exc:
            self._metrics.credential_failures.labels("record").inc()
            if keeper is not None:
                self._revoke_lease(keeper, record, "batch_failed")
            if isinstance(exc, StoreError):
                raise
            log.error("a lease record cannot be written", extra={"reason": type(exc).__name__})
            raise Unavailable("the server cannot record the credential's lease") from None
        return Issued(ref, generated.data, record)

    def revoke(self, config: Configuration, records: Iterable[LeaseRecord], reason: str) -> list[LeaseRecord]:
        """Revoke each record's lease and forget it; returns the ones that could not be revoked now
        (they stay recorded, and the revoker tries again)."""
        failed = []
        for record in records:
            try:
                generator = self.registry.generator(config, record.generator)
            except FederationError:
                generator = None  # deleted or broken: the lease runs out by itself
            if isinstance(generator, LeaseKeeper):
                if not self._revoke_lease(generator, record, reason):
                    failed.append(record)
                    continue
            elif record.expires_at > self._clock():
                failed.append(record)
                continue
            if self.store is not None:
                try:
                    self.store.remove(record.id)
                except OSError as exc:
                    # Revoked, but still recorded: a later pass revokes it again, which is harmless.
                    log.warning("a revoked lease's record cannot be removed", extra={"reason": str(exc)})
        return failed

    def _revoke_lease(self, keeper: LeaseKeeper, record: LeaseRecord, reason: str) -> bool:
        try:
            keeper.revoke(record.lease_id)
        except FederationError as exc:
            self._metrics.credential_failures.labels("revoke").inc()
            log.warning(
                "revocation failed",
                extra={
                    "generator": record.generator.describe(),
                    "owner": record.owner.describe(),
                    "reason": exc.detail,
                },
            )
            return False
        self._metrics.credentials_revoked.labels(record.generator.kind, reason).inc()
        log.info(
            "credential revoked",
            extra={"generator": record.generator.describe(), "owner": record.owner.describe(), "why": reason},
        )
        return True

    def records(self) -> list[LeaseRecord]:
        """Every lease held now."""
        return self.store.records() if self.store is not None else []

    def revoke_own(self, config: Configuration, owner: Owner, ref: GeneratorRef) -> tuple[int, int]:
        """Revoke what ``owner`` (the same pod, or the same subject when not bound to a pod) holds from
        ``ref``; (revoked, failed)."""
        mine = [
            record
            for record in self.records()
            if record.generator == ref and _same_owner(record.owner, owner)
        ]
        failed = self.revoke(config, mine, "owner")
        return len(mine) - len(failed), len(failed)

    def revoke_others(
        self, config: Configuration, federation: str, namespace: str, owner_name: str
    ) -> tuple[int, int]:
        """Revoke what the pod (or ServiceAccount) ``owner_name`` of ``namespace`` holds from generators of
        that namespace, as ESI's revoke route does; (revoked, failed)."""
        theirs = [
            record
            for record in self.records()
            if record.owner.federation == federation
            and record.generator.namespace == namespace
            and (record.owner.pod_name or record.owner.subject.rsplit(":", 1)[-1]) == owner_name
        ]
        failed = self.revoke(config, theirs, "others")
        return len(theirs) - len(failed), len(failed)


def _same_owner(held: Owner, asking: Owner) -> bool:
    if held.federation != asking.federation or held.subject != asking.subject:
        return False
    return held.pod_uid == asking.pod_uid
