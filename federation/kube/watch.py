"""List, then watch, one resource type of cluster-main, for as long as the server runs.

The loop of one ``ResourceWatcher`` thread::

    list (full state)  ->  watch from the list's resourceVersion  ->  stream ended: watch again from
    the last resourceVersion seen;  ERROR 410 Gone: list again;  any other failure: wait (exponential
    backoff with jitter, up to 30 s), then list again.

A list replaces everything held for the type, so whatever a broken watch missed (a deletion, say) is
caught up. ClusterSecretStores are served as ``external-secrets.io/v1`` by current ESO releases and as
``v1beta1`` by older ones: the first version the server answers a list for is the one watched.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from federation.kube.api import KubeApi, KubeApiError, field_map
from federation.kube.bounded import MAX_DEPTH, admit
from federation.metrics import Metrics

log = logging.getLogger(__name__)

GONE = 410
NOT_FOUND = 404
# The server ends each watch after this long (a fresh one follows at once), and the client gives up on
# a stream silent for WATCH_TIMEOUT_SECONDS + WATCH_READ_GRACE (kube.api): a half-dead connection is
# replaced within that bound, and readiness says so when a type stays unconfirmed (kube.source).
WATCH_TIMEOUT_SECONDS = 30
QUIET_STREAM_SECONDS = 1.0
LIST_PAGE_SIZE = 500
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# Its own generator: watch threads never move the state of the process-wide random module, which
# other code (a test framework replaying examples, for one) may rely on.
_JITTER = random.Random()  # noqa: S311 - jitter, not security-related


@dataclass(frozen=True)
class WatchedType:
    """One resource type: its kind and the API versions to try, preferred first."""

    kind: str
    api_versions: tuple[str, ...]
    plural: str
    # Served only when another product's CRD is installed (ESO's generators): absent, it is listed as
    # empty, and looked for again every BACKOFF_MAX seconds, instead of keeping the server unready.
    optional: bool = False

    def path(self, api_version: str) -> str:
        """The cluster-wide collection path of this type in ``api_version``."""
        if "/" not in api_version:
            return f"/api/{api_version}/{self.plural}"
        return f"/apis/{api_version}/{self.plural}"


class Sink(Protocol):
    """Where a watcher delivers what it sees."""

    def replace_all(self, kind: str, api_version: str, items: Iterable[dict[str, Any]]) -> None:
        """The full state of ``kind`` (a list answer, consumed once; it may raise while read)."""

    def apply(self, kind: str, api_version: str, event: str, obj: dict[str, Any]) -> None:
        """One ADDED, MODIFIED or DELETED event."""


class NotServed(Exception):
    """An optional type's resource is not served by this API server (its CRD is not installed)."""


class WatchExpired(Exception):
    """The server no longer has the history the watch asked for (410 Gone): list again."""


class Backoff:
    """Exponential delays with jitter, reset after a success."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def delay(self) -> float:
        """The next delay to wait, then double it (up to the maximum)."""
        current = self._next
        self._next = min(self._maximum, self._next * 2)
        # Jitter, so the workers of every replica do not reconnect in lock-step after an outage.
        return current * _JITTER.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._next = self._initial


class ResourceWatcher:
    """Keeps ``sink`` up to date with one resource type, in a daemon thread."""

    def __init__(
        self,
        api: KubeApi,
        watched: WatchedType,
        sink: Sink,
        stop: threading.Event,
        metrics: Metrics | None = None,
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._watched = watched
        self._sink = sink
        self._stop = stop
        self._backoff = Backoff()
        self.listed = threading.Event()
        self.lists = 0
        self.refused = 0
        self.failures = 0
        self.confirmed_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"watch-{watched.plural}", daemon=True)

    def start(self) -> None:
        """Start listing and watching."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after the stop event is set)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except WatchExpired:
                log.info("watch expired (410 Gone); listing again", extra={"resource": self._watched.plural})
            except NotServed:
                self._stop.wait(BACKOFF_MAX)
            except Exception as exc:
                # Supervised: whatever breaks (the API server, one object's content, a bug), the type is
                # listed again after a backoff; a dead thread would freeze the configuration unnoticed.
                if self._stop.is_set():
                    return
                self.failures += 1
                if self._metrics is not None:
                    self._metrics.kube_watch_failures.labels(self._watched.plural).inc()
                delay = self._backoff.delay()
                reason = str(exc) if isinstance(exc, KubeApiError) else type(exc).__name__
                log.warning(
                    "listing or watching failed; retrying",
                    extra={"resource": self._watched.plural, "reason": reason, "retry_in_s": round(delay, 2)},
                    exc_info=not isinstance(exc, KubeApiError),
                )
                self._stop.wait(delay)

    def _list_and_watch(self) -> None:
        api_version, resource_version = self._list()
        self._backoff.reset()
        while not self._stop.is_set():
            started = time.monotonic()
            resource_version, delivered = self._watch(api_version, resource_version)
            self.confirmed_at = time.monotonic()
            if delivered or self.confirmed_at - started >= QUIET_STREAM_SECONDS:
                self._backoff.reset()
            else:
                # A stream that ends at once without a single event must not become a busy loop.
                self._stop.wait(self._backoff.delay())

    @property
    def plural(self) -> str:
        """The resource watched (its plural name)."""
        return self._watched.plural

    def stale_for(self, now: float) -> float:
        """Seconds since the API server last confirmed this type's state (a list, an event, a bookmark,
        or a watch that ran to its end); 0 while it has never been listed (readiness waits for that)."""
        return now - self.confirmed_at if self.listed.is_set() else 0.0

    def _admitted(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        admitted = admit(obj)
        if admitted is None:
            self.refused += 1
            if self._metrics is not None:
                self._metrics.kube_objects_refused.labels(self._watched.kind).inc()
            log.warning(
                "object refused: nested deeper than %d levels",
                MAX_DEPTH,
                extra={"kind": self._watched.kind, "object": _describe(obj)},
            )
        return admitted

    def _list(self) -> tuple[str, str]:
        """List the type in the first served version; deliver the items; return (version, resourceVersion)."""
        last_error: KubeApiError | None = None
        for api_version in self._watched.api_versions:
            path = self._watched.path(api_version)
            try:
                first = self._api.get(path, {"limit": str(LIST_PAGE_SIZE)})
            except KubeApiError as exc:
                if exc.status != NOT_FOUND:
                    raise
                last_error = exc
                continue
            # Page by page, each filtered by the sink as it comes: memory follows what is kept (the
            # referenced Secrets), not how many Secrets the cluster holds. A failed page fails the list.
            self._sink.replace_all(self._watched.kind, api_version, self._items(path, first))
            self.lists += 1
            self.confirmed_at = time.monotonic()
            self.listed.set()
            metadata = field_map(first, "metadata")
            return api_version, str(metadata.get("resourceVersion") or "")
        if self._watched.optional:
            self._sink.replace_all(self._watched.kind, self._watched.api_versions[0], [])
            # "Not served" is an answer: the type is known to be empty until the next look.
            self.confirmed_at = time.monotonic() + BACKOFF_MAX
            self.listed.set()
            raise NotServed(self._watched.plural)
        raise last_error or KubeApiError(NOT_FOUND, f"{self._watched.plural} is not served")

    def _items(self, path: str, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The admitted items of ``page`` and of the pages that follow it (``continue`` tokens)."""
        while True:
            for item in page.get("items") or []:
                admitted = self._admitted(item) if isinstance(item, dict) else None
                if admitted is not None:
                    yield admitted
            token = field_map(page, "metadata").get("continue")
            if not token or self._stop.is_set():
                return
            page = self._api.get(path, {"limit": str(LIST_PAGE_SIZE), "continue": str(token)})

    def _watch(self, api_version: str, resource_version: str) -> tuple[str, bool]:
        """Deliver events until the stream ends; return the last resourceVersion seen and whether any
        event came."""
        path = self._watched.path(api_version)
        delivered = False
        for event in self._api.watch(path, resource_version, WATCH_TIMEOUT_SECONDS):
            if self._stop.is_set():
                break
            kind, obj = event.get("type"), event["object"]
            if kind == "ERROR":
                if obj.get("code") == GONE:
                    raise WatchExpired
                raise KubeApiError(int(obj.get("code") or 0), str(obj.get("message") or "watch error")[:300])
            delivered = True
            self.confirmed_at = time.monotonic()
            resource_version = _resource_version(obj) or resource_version
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                admitted = self._admitted(obj)
                # A refused object is as if deleted: an older, admitted version must not stay in force.
                change = str(kind) if admitted is not None else "DELETED"
                self._sink.apply(self._watched.kind, api_version, change, admitted or obj)
        return resource_version, delivered


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = field_map(obj, "metadata")
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    return f"{namespace}/{name}" if namespace else name


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return str(value) if value else None
