"""Kubernetes mode: the configuration is listed and watched from cluster-main's API server.

These types are watched, each by its own ``ResourceWatcher`` thread (``kube.watch``):
``KubernetesFederation``, ``Authorization``, ``ClusterSecretStore`` (``external-secrets.io/v1``, else
``v1beta1``), ``v1 Secret``, ``v1 ConfigMap``, and ESO's generators ``Password``, ``UUID``, ``Fake`` and
``VaultDynamicSecret`` (optional: without ESO's generator CRDs they count as empty). Every change that
matters (anything but ``status`` and bookkeeping metadata) rebuilds the WHOLE configuration from
everything held, through the same ``build_configuration`` as local mode, and swaps it into the
``ConfigHolder``: a batch that does not parse is rejected and the last good configuration stays.
Nothing is loaded, and ``/readyz`` stays 503, until every type has been listed once.

Secrets: all Secrets are watched cluster-wide (one watch, whatever the number of namespaces), but only
those the configuration references are kept: ``tokenSecretRef``/``tokenReview`` of federations, the
Secret selectors of store providers, and every Secret of a ``kubernetes`` provider's ``remoteNamespace``.
When a change references a Secret that was filtered out so far, it is read at once (GET by name, or a
list of that namespace) before the rebuild. ConfigMaps are watched the same way; only those a store
references (``caProvider`` of ``type: ConfigMap``) are kept.

Each gunicorn worker runs its own source, so every worker sees a change within about a second of the
API server. One of them, across every replica, also writes status (``federation.kube.status``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from federation.config.holder import ConfigHolder
from federation.config.parse import AUTHORIZATION_API, FEDERATION_API, STORE_APIS, build_configuration
from federation.config.references import ObjectKey, SecretSelection, referenced_selection
from federation.errors import ConfigurationError
from federation.generators.model import GENERATOR_API
from federation.jwks import JwksRegistry
from federation.kube.api import WATCH_READ_GRACE, KubeApi, KubeApiError, field_map
from federation.kube.lease import default_namespace
from federation.kube.status import StatusWriter
from federation.kube.watch import WATCH_TIMEOUT_SECONDS, ResourceWatcher, WatchedType
from federation.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "kubernetes"
NOT_FOUND = 404
FEDERATIONS = WatchedType("KubernetesFederation", (FEDERATION_API,), "kubernetesfederations")
AUTHORIZATIONS = WatchedType("Authorization", (AUTHORIZATION_API,), "authorizations")
STORES = WatchedType("ClusterSecretStore", STORE_APIS, "clustersecretstores")
SECRETS = WatchedType("Secret", ("v1",), "secrets")
CONFIG_MAPS = WatchedType("ConfigMap", ("v1",), "configmaps")
GENERATORS = tuple(
    WatchedType(kind, (GENERATOR_API,), plural, optional=True)
    for kind, plural in (
        ("Password", "passwords"),
        ("UUID", "uuids"),
        ("Fake", "fakes"),
        ("VaultDynamicSecret", "vaultdynamicsecrets"),
    )
)
WATCHED = (FEDERATIONS, AUTHORIZATIONS, STORES, SECRETS, CONFIG_MAPS, *GENERATORS)
_REFERENCED = {SECRETS.kind: SECRETS, CONFIG_MAPS.kind: CONFIG_MAPS}
# A burst of events (a kubectl apply of several files) is coalesced into one rebuild.
COALESCE_SECONDS = 0.05
STOP_JOIN_SECONDS = 2.0
SECRET_RETRY_SECONDS = 5.0
# A healthy watch is confirmed at least every WATCH_TIMEOUT_SECONDS (the server ends it, a new one
# starts); a stalled one is cut after WATCH_TIMEOUT_SECONDS + WATCH_READ_GRACE. Past this, readiness
# says the configuration is stale.
STALE_AFTER_SECONDS = WATCH_TIMEOUT_SECONDS + WATCH_READ_GRACE + 20.0
_KEPT_METADATA = ("name", "namespace")


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = field_map(obj, "metadata")
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _meaningful(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a rebuild depends on: not ``status`` (our own writes), not resourceVersion and the like."""
    metadata = field_map(obj, "metadata")
    kept = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    kept["metadata"] = {k: metadata[k] for k in _KEPT_METADATA if k in metadata}
    return kept


@dataclass
class ObjectCache:
    """Every watched object held now, by kind; calls ``on_change`` when something meaningful changed."""

    on_change: Callable[[], None]
    selection: SecretSelection = field(default_factory=SecretSelection)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _objects: dict[str, dict[ObjectKey, dict[str, Any]]] = field(default_factory=dict)

    def replace_all(self, kind: str, api_version: str, items: Iterable[dict[str, Any]]) -> None:
        """The full state of ``kind`` (from a list)."""
        fresh = {}
        for item in items:
            stamped = {"apiVersion": api_version, "kind": kind, **item}
            if self._keeps(kind, stamped):
                fresh[_key(stamped)] = stamped
        with self._lock:
            first = kind not in self._objects
            before = self._objects.get(kind, {})
            changed = {k: _meaningful(v) for k, v in before.items()} != {
                k: _meaningful(v) for k, v in fresh.items()
            }
            self._objects[kind] = fresh
        if changed or first:
            self.on_change()

    def apply(self, kind: str, api_version: str, event: str, obj: dict[str, Any]) -> None:
        """One watch event."""
        stamped = {"apiVersion": api_version, "kind": kind, **obj}
        key = _key(stamped)
        with self._lock:
            held = self._objects.setdefault(kind, {})
            before = held.get(key)
            if event == "DELETED" or not self._keeps(kind, stamped):
                held.pop(key, None)
                changed = before is not None
            else:
                held[key] = stamped
                changed = before is None or _meaningful(before) != _meaningful(stamped)
        if changed:
            self.on_change()

    def put(self, kind: str, objects: Iterable[dict[str, Any]]) -> None:
        """Add objects read outside the watch (newly referenced Secrets and ConfigMaps)."""
        with self._lock:
            held = self._objects.setdefault(kind, {})
            for obj in objects:
                stamped = {"apiVersion": "v1", "kind": kind, **obj}
                if self._keeps(kind, stamped):
                    held[_key(stamped)] = stamped

    def select_secrets(self, selection: SecretSelection) -> None:
        """Keep only the Secrets and ConfigMaps ``selection`` references, from now on."""
        with self._lock:
            self.selection = selection
            for kind in _REFERENCED:
                held = self._objects.get(kind, {})
                for key in [k for k in held if not selection.wants(*k, kind)]:
                    del held[key]

    def of_kind(self, kind: str) -> dict[ObjectKey, dict[str, Any]]:
        """A copy of the index of ``kind``."""
        with self._lock:
            return dict(self._objects.get(kind, {}))

    def resources(self) -> list[dict[str, Any]]:
        """Every object held, Secrets last."""
        with self._lock:
            return [obj for watched in WATCHED for obj in self._objects.get(watched.kind, {}).values()]

    def _keeps(self, kind: str, obj: Mapping[str, Any]) -> bool:
        return kind not in _REFERENCED or self.selection.wants(*_key(obj), kind)


class KubernetesSource:
    """Lists and watches the configuration, keeps the holder up to date, and writes status."""

    def __init__(
        self,
        settings: Settings,
        holder: ConfigHolder,
        keys: JwksRegistry | None = None,
        api: KubeApi | None = None,
    ) -> None:
        self._settings = settings
        self._holder = holder
        self._keys = keys
        self._api = api
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self.cache = ObjectCache(on_change=self._dirty.set)
        self.problems: list[str] = []
        self._fetched = SecretSelection()
        self._secret_namespaces = settings.federation_secret_namespaces or (
            settings.lease_namespace or default_namespace(),
        )
        self._unread_secrets = False
        self._watchers: list[ResourceWatcher] = []
        self._status: StatusWriter | None = None
        self._rebuilder = threading.Thread(target=self._rebuild_loop, name="kube-config-rebuild", daemon=True)

    def start(self) -> None:
        """Connect, then list and watch in background threads (``holder.ready`` after the first lists)."""
        api = self._api or KubeApi.connect(self._settings.kubeconfig)
        self._api = api
        self._watchers = [
            ResourceWatcher(api, watched, self.cache, self._stop, self._holder.metrics) for watched in WATCHED
        ]
        self._holder.stale_reason = self.stale_reason
        for watcher in self._watchers:
            watcher.start()
        self._rebuilder.start()
        if self._keys is not None:
            self._status = StatusWriter.for_source(self._settings, api, self._keys, self._holder, self)
            self._status.start()

    def stop(self) -> None:
        """Stop watching and writing status; break open watch streams."""
        self._stop.set()
        self._dirty.set()
        if self._status is not None:
            self._status.stop()
        if self._api is not None:
            self._api.close()
        # Briefly: a thread in the middle of a request ends with it (every request has a timeout).
        for watcher in self._watchers:
            watcher.join(STOP_JOIN_SECONDS)
        if self._status is not None:
            self._status.join(STOP_JOIN_SECONDS)

    @property
    def api(self) -> KubeApi | None:
        """The API client (None before ``start``)."""
        return self._api

    @property
    def status_writer(self) -> StatusWriter | None:
        """This worker's status writer (None without a key registry to report on)."""
        return self._status

    @property
    def listed(self) -> bool:
        """True once every watched type has been listed."""
        return bool(self._watchers) and all(w.listed.is_set() for w in self._watchers)

    def stale_reason(self) -> str | None:
        """Why the configuration held is known to be out of date (None when it is not): a type the API
        server has not confirmed for ``STALE_AFTER_SECONDS`` (its watch keeps failing or stalled)."""
        now = time.monotonic()
        stale = sorted(w.plural for w in self._watchers if w.stale_for(now) > STALE_AFTER_SECONDS)
        if not stale:
            return None
        return f"not confirmed by the API server for over {STALE_AFTER_SECONDS:g} s: {', '.join(stale)}"

    def observed(self, kind: str) -> dict[ObjectKey, dict[str, Any]]:
        """The objects of ``kind`` as last seen (status included)."""
        return self.cache.of_kind(kind)

    def _rebuild_loop(self) -> None:
        while not self._stop.is_set():
            # A referenced Secret that could not be read is tried again even if nothing else changes.
            changed = self._dirty.wait(SECRET_RETRY_SECONDS if self._unread_secrets else None)
            if self._stop.wait(COALESCE_SECONDS):
                return
            self._dirty.clear()
            if self.listed and (changed or self._unread_secrets):
                self.rebuild()

    def rebuild(self) -> None:
        """Build the configuration from everything held; put it in force, or reject it."""
        # Decided on one reading of the cache: Secrets read below are added to it, nothing else.
        held = [r for r in self.cache.resources() if r.get("kind") not in _REFERENCED]
        out_of_scope = [why for r in held if (why := self._out_of_scope(r)) is not None]
        resources = [r for r in held if self._out_of_scope(r) is None]
        self._follow_secret_references(referenced_selection(resources))
        resources += [r for r in self.cache.resources() if r.get("kind") in _REFERENCED]
        try:
            config = build_configuration(resources, source=SOURCE)
        except ConfigurationError as exc:
            self.problems = exc.problems
            self._holder.reject(SOURCE, exc.problems)
        else:
            self.problems = []
            self._holder.replace(replace(config, ignored=(*config.ignored, *out_of_scope)))
        if self._status is not None:
            self._status.wake()

    def _out_of_scope(self, resource: Mapping[str, Any]) -> str | None:
        """Why a KubernetesFederation may not be loaded: it names a Secret outside the namespaces
        federations may reference (its value would be sent to whatever URL the federation names)."""
        allowed = self._secret_namespaces
        if resource.get("kind") != FEDERATIONS.kind or "*" in allowed:
            return None
        spec = field_map(resource, "spec")
        refs = {
            "tokenSecretRef": field_map(spec, "tokenSecretRef"),
            "tokenReview.tokenSecretRef": field_map(field_map(spec, "tokenReview"), "tokenSecretRef"),
        }
        for field_name, ref in refs.items():
            namespace = ref.get("namespace")
            if ref and namespace not in allowed:
                return (
                    f"KubernetesFederation {_key(resource)[1]}: {field_name} names a Secret in namespace "
                    f"{str(namespace)[:63]!r}; federations may name Secrets only in {', '.join(allowed)} "
                    "(--federation-secret-namespaces); the federation is not loaded"
                )
        return None

    def _follow_secret_references(self, selection: SecretSelection) -> None:
        """Filter the Secrets to ``selection``; read the ones that were not kept so far."""
        self.cache.select_secrets(selection)
        assert self._api is not None
        self._unread_secrets = False
        fetched_names = set(self._fetched.names & selection.names)
        fetched_namespaces = set(self._fetched.namespaces & selection.namespaces)
        fetched_config_maps = set(self._fetched.config_maps & selection.config_maps)
        for namespace in selection.namespaces - fetched_namespaces:
            try:
                answer = self._api.get(f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets")
            except KubeApiError as exc:
                log.warning(
                    "cannot list referenced Secrets", extra={"namespace": namespace, "reason": str(exc)}
                )
                self._unread_secrets = True
                continue
            self.cache.put(SECRETS.kind, [i for i in answer.get("items") or [] if isinstance(i, dict)])
            fetched_namespaces.add(namespace)
        fetched_names |= self._read_by_name(SECRETS, selection.names - fetched_names)
        fetched_config_maps |= self._read_by_name(CONFIG_MAPS, selection.config_maps - fetched_config_maps)
        self._fetched = SecretSelection(
            frozenset(fetched_names), frozenset(fetched_namespaces), frozenset(fetched_config_maps)
        )

    def _read_by_name(self, watched: WatchedType, wanted: Iterable[ObjectKey]) -> set[ObjectKey]:
        """GET each of ``wanted``; the ones read (or absent) are returned, the others retried later."""
        assert self._api is not None
        read: set[ObjectKey] = set()
        for namespace, name in wanted:
            path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{watched.plural}/{quote(name, safe='')}"
            try:
                found = [self._api.get(path)]
            except KubeApiError as exc:
                if exc.status != NOT_FOUND:  # an absent object is a problem that status reports
                    log.warning(
                        "cannot read a referenced object",
                        extra={"kind": watched.kind, "object": f"{namespace}/{name}", "reason": str(exc)},
                    )
                    self._unread_secrets = True
                    continue
                found = []
            self.cache.put(watched.kind, found)
            read.add((namespace, name))
        return read
