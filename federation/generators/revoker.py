"""The loop that keeps leases of living pods and revokes the others.

Every ``interval`` seconds (at most 60), the leading process (one gunicorn worker holding the state
directory's lock; in Kubernetes mode the status Lease holder) goes through every record:

- a lease past its end is revoked (Vault has usually dropped it already; revoking again is harmless)
  and forgotten;
- records bound to a pod are grouped by pod, and each pod is looked up once on its client cluster
  (``pods.PodChecker``). Gone, or replaced by a pod with another uid: every lease of it is revoked.
  Alive: leases that would end before two more checks are renewed for their original term.
  Unknown (the cluster cannot be asked): nothing is done, so a lease is never kept alive without
  a positive answer and ends at the latest at its term;
- records not bound to a pod (a token without pod claims) are never renewed: they end with their lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from federation.config.model import Configuration
from federation.errors import FederationError
from federation.generators.base import LeaseKeeper
from federation.generators.issuance import Credentials
from federation.generators.leases import LeaseRecord
from federation.generators.pods import PodChecker, PodState
from federation.metrics import Metrics

log = logging.getLogger(__name__)

MAX_INTERVAL = 60.0


class Revoker:
    """Renews and revokes recorded leases; ``start`` runs it in a daemon thread."""

    def __init__(
        self,
        current: Callable[[], Configuration],
        credentials: Credentials,
        pods: PodChecker,
        metrics: Metrics,
        interval: float,
        *,
        is_leader: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < interval <= MAX_INTERVAL:
            raise ValueError(f"the pod check interval must be more than 0 and at most {MAX_INTERVAL:.0f} s")
        self._current = current
        self._credentials = credentials
        self._pods = pods
        self._metrics = metrics
        self.interval = interval
        self._is_leader = is_leader
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        """One pass over every record (only when this process leads)."""
        if not self._is_leader():
            return
        config = self._current()  # one snapshot for the whole pass
        now = self._clock()
        by_pod: dict[tuple[str, str, str, str], list[LeaseRecord]] = defaultdict(list)
        ended = []
        for record in self._credentials.records():
            if record.expires_at <= now:
                ended.append(record)
            elif record.owner.bound_to_pod:
                owner = record.owner
                by_pod[(owner.federation, owner.namespace, str(owner.pod_name), str(owner.pod_uid))].append(
                    record
                )
        self._credentials.revoke(config, ended, "lease_end")
        for (federation, namespace, name, uid), records in by_pod.items():
            state = self._pods.state(config, federation, namespace, name, uid)
            if state is PodState.GONE:
                self._credentials.revoke(config, records, "pod_gone")
            elif state is PodState.ALIVE:
                self._renew_due(config, records)
            else:
                self._metrics.credential_failures.labels("pod_check").inc()

    def _renew_due(self, config: Configuration, records: list[LeaseRecord]) -> None:
        for record in records:
            now = self._clock()
            remaining = record.expires_at - now
            if not record.renewable or remaining > max(record.duration / 3, 2 * self.interval):
                continue
            try:
                keeper = self._credentials.registry.generator(config, record.generator)
                if not isinstance(keeper, LeaseKeeper):
                    continue
                lease = keeper.renew(record.lease_id, record.duration)
            except FederationError as exc:
                self._metrics.credential_failures.labels("renew").inc()
                log.warning(
                    "renewal failed", extra={"generator": record.generator.describe(), "reason": exc.detail}
                )
                continue
            if self._credentials.store is not None:
                self._credentials.store.put(record.renewed(now + lease.duration, lease.renewable))
            self._metrics.credentials_renewed.labels(record.generator.kind).inc()

    def start(self) -> None:
        """Run ``run_once`` every interval in a daemon thread until ``stop``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="esi-lease-revoker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for the pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must outlive any one failure; the next pass tries again
                log.exception("lease revoker pass failed")
            self._stop.wait(self.interval)
