"""A ``coordination.k8s.io/v1`` Lease: at most one writer of CR status among every worker of every replica.

``hold()`` is called before each round of status writes. It reads the Lease and

- creates it naming this worker when it does not exist;
- renews it (``renewTime``) when this worker holds it;
- takes it over when its holder stopped renewing for ``leaseDurationSeconds``;
- otherwise answers False: another worker holds it.

Writes are a PUT carrying the ``resourceVersion`` just read, so when two workers race, the API server
accepts one and answers 409 Conflict to the other (which then does not write). Any failure also answers
False: a worker that cannot prove it holds the Lease never writes. Verbs needed: get, create, update.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from federation.kube.api import KubeApi, KubeApiError, field_map

log = logging.getLogger(__name__)

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
NOT_FOUND, CONFLICT = 404, 409


def default_namespace() -> str:
    """``POD_NAMESPACE`` (set by the chart), else the in-cluster namespace file, else ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def worker_identity() -> str:
    """This worker's holder identity: the pod (or host) name, the process id and a random suffix."""
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{pod}_{os.getpid()}_{secrets.token_hex(3)}"


def micro_time(epoch: float) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time (``Time`` or ``MicroTime``), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Lease:
    """One named Lease, contended for by this worker."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        *,
        identity: str,
        duration: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = max(1, round(duration))
        self._clock = clock
        self.held = False

    @property
    def path(self) -> str:
        """The Lease's API path."""
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def hold(self) -> bool:
        """Acquire or renew the Lease; True when this worker holds it now."""
        try:
            held = self._acquire_or_renew()
        except KubeApiError as exc:
            if exc.status != CONFLICT:
                log.warning(
                    "cannot read or write the status Lease", extra={"lease": self.name, "reason": str(exc)}
                )
            held = False
        if held != self.held:
            log.info(
                "status Lease " + ("acquired" if held else "lost"),
                extra={"lease": self.name, "holder": self.identity},
            )
        self.held = held
        return held

    def _acquire_or_renew(self) -> bool:
        now = self._clock()
        try:
            lease = self._api.get(self.path)
        except KubeApiError as exc:
            if exc.status != NOT_FOUND:
                raise
            self._api.create(self.path.rsplit("/", 1)[0], self._body({}, {}, now))
            return True
        spec = field_map(lease, "spec")
        if not self._may_take(spec, now):
            return False
        metadata = field_map(lease, "metadata")
        self._api.replace(self.path, self._body(metadata, spec, now))
        return True

    def _may_take(self, spec: Mapping[str, Any], now: float) -> bool:
        holder = spec.get("holderIdentity")
        if not holder or holder == self.identity:
            return True
        renewed = parse_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds")
        duration = duration if isinstance(duration, int) and duration > 0 else self._duration
        return renewed is None or now > renewed + duration

    def _body(self, metadata: Mapping[str, Any], spec: Mapping[str, Any], now: float) -> dict[str, Any]:
        ours = spec.get("holderIdentity") == self.identity
        transitions = spec.get("leaseTransitions")
        transitions = transitions if isinstance(transitions, int) else 0
        kept_metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if metadata.get("resourceVersion"):
            kept_metadata["resourceVersion"] = metadata["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": kept_metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._duration,
                "acquireTime": spec.get("acquireTime") if ours else micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions + (0 if ours or not spec.get("holderIdentity") else 1),
            },
        }
