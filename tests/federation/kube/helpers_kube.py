"""cluster-main's API server for tests: kmock's ``KubernetesEmulator`` on 127.0.0.1, in its own thread.

``EmulatedCluster`` runs the emulator's asyncio loop in a daemon thread, so that synchronous code (the
federation server's watch threads, werkzeug, the tests themselves) can talk to it over plain HTTP like
to any API server. Tests change objects through the emulator's own HTTP API (so every watch sees the
events) and steer it: ``drop_watches()`` ends every open watch stream, ``expire_next_watch()`` answers
the next watch with ``ERROR 410 Gone``. The emulator learns PUT (replace) for Leases, which it does
not serve by itself.

``kube_stack`` serves the federation server in Kubernetes mode over TLS (like ``tests.helpers_stack``) with
the walkthrough's resources created in the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import requests
import yaml
from flask import Flask
from kmock import KubernetesEmulator, Server
from werkzeug.serving import BaseWSGIServer

from hack.certs import server_ssl_context, write_tls_files
from hack.client_issuer import ClientClusterIssuer
from tests.helpers_http import send_json
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    STORE,
    authorization,
    fake_store,
    seed_values,
    serve_federation,
)

FEDERATIONS = "/apis/identity.federation.external-secrets.io/v1alpha1/kubernetesfederations"
AUTHORIZATIONS = "/apis/federation.external-secrets.io/v1alpha1/authorizations"
STORES_V1 = "/apis/external-secrets.io/v1/clustersecretstores"
STORES_V1BETA1 = "/apis/external-secrets.io/v1beta1/clustersecretstores"
SECRETS = "/api/v1/secrets"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
LEASE_NAMESPACE = "esi-system"
_RESOURCES = (
    "identity.federation.external-secrets.io/v1alpha1/kubernetesfederations",
    "federation.external-secrets.io/v1alpha1/authorizations",
    "v1/secrets",
    "v1/configmaps",
    "coordination.k8s.io/v1/leases",
)


@dataclass(frozen=True)
class SeenRequest:
    """One request the emulator answered (the Authorization header is kept: tests assert on it)."""

    method: str
    path: str
    query: Mapping[str, str]
    authorization: str | None


class _Emulator(KubernetesEmulator):  # type: ignore[misc]
    """The emulator, plus the controls and the verb tests need."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.drops = asyncio.Event()
        self.expire: set[str] = set()
        self.seen: list[SeenRequest] = []

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.seen.append(
            SeenRequest(
                raw_request.method,
                raw_request.path,
                dict(raw_request.query),
                raw_request.headers.get("Authorization"),
            )
        )
        if raw_request.method == "PUT":
            return await self._replace(raw_request)
        return await super().__call__(raw_request)

    async def _replace(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock serves PATCH but not PUT. A Lease is written whole, so merging the whole object into
        # the stored one replaces it; the change is published on the bus like the emulator's own.
        body = await raw_request.json()
        parts = raw_request.path.strip("/").split("/")
        if len(parts) == 5 and parts[0] == "apis":  # a cluster-scoped object
            parts = [*parts[:3], "namespaces", "", *parts[3:]]
        if len(parts) != 7 or parts[0] != "apis" or parts[3] != "namespaces":
            return aiohttp.web.json_response({"kind": "Status", "code": 405}, status=405)
        _, group, version, _, namespace, plural, name = parts
        namespace = namespace or None
        resource = kmock.resource(group, version, plural)
        key = (resource, namespace, name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
            self._objects[key].patch(body)
            raw = self._objects[key].raw
            await self._buses[resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        path = str(request.url.path)
        if path in self.expire:
            self.expire.discard(path)
            yield b""
            yield {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old resource version",
                },
            }
            return
        drops = self.drops
        events = super()._serve_watch(request)
        dropped = asyncio.ensure_future(drops.wait())
        following: asyncio.Future[Any] | None = None
        try:
            while True:
                following = asyncio.ensure_future(events.__anext__())
                await asyncio.wait({following, dropped}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await following
                    return
                try:
                    yield following.result()
                except StopAsyncIteration:
                    return
        finally:
            dropped.cancel()
            # Cancelled while waiting (the client went away): the pending read still runs the inner
            # generator, which cannot be closed ("aclose(): ... already running") until it is stopped.
            if following is not None and not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
            await events.aclose()


class EmulatedCluster:
    """cluster-main's API server on 127.0.0.1 (a free port), served from a background thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._emulator: _Emulator | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="kmock", daemon=True)

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop_watches()
        assert self._loop is not None
        assert self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        async with _Emulator() as emulator, Server(emulator, host="127.0.0.1") as server:
            for resource in _RESOURCES:
                emulator.resources[resource] = {}
            self._emulator, self.port = emulator, server.port
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._stopping.wait()

    @property
    def url(self) -> str:
        """The API server's URL."""
        return f"http://127.0.0.1:{self.port}"

    def serve_stores(self, api_version: str) -> None:
        """Serve ClusterSecretStores in ``api_version`` (``v1`` or ``v1beta1``) only."""
        self._call(
            lambda e: e.resources.__setitem__(f"external-secrets.io/{api_version}/clustersecretstores", {})
        )

    def write_kubeconfig(self, path: Path, token: str = "cluster-main-test-token") -> Path:  # noqa: S107
        """A kubeconfig whose current context is this API server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster-main", "cluster": {"server": self.url}}],
            "users": [{"name": "esi-federation", "user": {"token": token}}],
            "contexts": [{"name": "main", "context": {"cluster": "cluster-main", "user": "esi-federation"}}],
            "current-context": "main",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # -- objects, through the API -------------------------------------------------------------------

    def create(self, collection: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``obj`` to ``collection``."""
        return self._request("POST", collection, obj)

    def patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the object at ``path``."""
        return self._request("PATCH", path, patch)

    def delete(self, path: str) -> None:
        """DELETE the object at ``path``."""
        self._request("DELETE", path)

    def get(self, path: str) -> dict[str, Any]:
        """GET ``path``."""
        return self._request("GET", path)

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer = requests.request(method, self.url + path, json=body, timeout=10)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    # -- steering and observing ---------------------------------------------------------------------

    def drop_watches(self) -> None:
        """End every watch stream open now (as an API server restart or a load balancer would)."""

        def drop(emulator: _Emulator) -> None:
            emulator.drops.set()
            emulator.drops = asyncio.Event()

        self._call(drop)

    def expire_next_watch(self, collection: str) -> None:
        """Answer the next watch of ``collection`` with ``ERROR 410 Gone``."""
        self._call(lambda e: e.expire.add(collection))

    def requests(self) -> list[SeenRequest]:
        """Every request answered so far."""
        assert self._emulator is not None
        return list(self._emulator.seen)

    def count(self, method: str, path: str, *, watch: bool | None = None) -> int:
        """How many requests with this method and path were answered (watches or not, if asked)."""
        return sum(
            1
            for seen in self.requests()
            if seen.method == method
            and seen.path == path
            and (watch is None or (seen.query.get("watch") == "true") == watch)
        )

    def watching(self, collection: str) -> int:
        """How many watch streams of ``collection`` follow its changes now (past their initial replay)."""
        assert self._emulator is not None
        *_, group, version, plural = ["", *collection.strip("/").split("/")]
        group = "" if group == "api" else group
        return sum(
            bus.consumer_count
            for resource, bus in list(self._emulator._buses.items())
            if (resource.group, resource.version, resource.plural) == (group, version, plural)
        )

    def _call(self, change: Callable[[_Emulator], None]) -> None:
        assert self._loop is not None
        assert self._emulator is not None
        done = threading.Event()

        def run() -> None:
            try:
                change(self._emulator)  # type: ignore[arg-type]
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)


def secret(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A ``v1 Secret`` with ``stringData``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": dict(data),
    }


def config_map(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A ``v1 ConfigMap``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> float:
    """Poll ``condition`` until it holds; the seconds it took. AssertionError after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"the condition did not hold within {timeout} s")


@dataclass
class KubeStack:
    """The federation server in Kubernetes mode, its API server, and client-cluster-alpha."""

    url: str
    server_ca_file: Path
    cluster: EmulatedCluster
    issuer: ClientClusterIssuer
    app: Flask
    values: dict[str, str]
    _server: BaseWSGIServer | None = field(default=None, repr=False)

    def mint(self, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT, **options: Any) -> str:
        """A valid projected token of client-cluster-alpha."""
        return self.issuer.mint(namespace, service_account, [AUDIENCE], **options)

    def fetch(self, token: str, items: Sequence[Mapping[str, str]] | None = None) -> requests.Response:
        """POST /v1/secrets with ``token``."""
        body = {
            "cluster": CLUSTER,
            "secrets": list(items or [{"store": STORE, "key": "db-credentials", "property": "password"}]),
        }
        return requests.post(
            self.url + "/v1/secrets",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.server_ca_file),
            timeout=10,
        )

    @property
    def source(self) -> Any:
        """The app's ``KubernetesSource``."""
        return self.app.extensions["esi.source"]


def seed(
    cluster: EmulatedCluster,
    issuer: ClientClusterIssuer,
    values: Mapping[str, str],
    *,
    stores: str = STORES_V1,
) -> None:
    """Create the walkthrough's resources: vault-prod (fake), client-cluster-alpha, allow-alpha-monitoring."""
    store = fake_store(
        STORE,
        {
            "db-credentials": {"username": values["username"], "password": values["password"]},
            "api-keys": {"service-a-token": values["service-a-token"]},
        },
    )
    if stores == STORES_V1BETA1:
        store["apiVersion"] = "external-secrets.io/v1beta1"
    federation = issuer.federation_manifest(CLUSTER, audiences=[AUDIENCE])
    grant = authorization("allow-alpha-monitoring")
    # The emulator does not count generations as an API server does; these carry one, as real CRs do.
    for obj in (federation, grant):
        obj["metadata"]["generation"] = 1
    cluster.create(stores, store)
    cluster.create(FEDERATIONS, federation)
    cluster.create(AUTHORIZATIONS, grant)


@contextmanager
def kube_stack(
    tmp_path: Path,
    *,
    cluster: EmulatedCluster,
    issuer: ClientClusterIssuer | None = None,
    stores: str = STORES_V1,
    **settings: Any,
) -> Iterator[KubeStack]:
    """Seed ``cluster``, then serve the federation server in Kubernetes mode over TLS until the end."""
    with contextlib.ExitStack() as cleanup:
        if issuer is None:
            issuer = ClientClusterIssuer().start()
            cleanup.callback(issuer.stop)
        values = seed_values()
        cluster.serve_stores("v1" if stores == STORES_V1 else "v1beta1")
        seed(cluster, issuer, values, stores=stores)
        options = {
            "kubernetes": True,
            "kubeconfig": cluster.write_kubeconfig(tmp_path / "kubeconfig"),
            "lease_namespace": LEASE_NAMESPACE,
            "lease_duration": 3.0,
            "status_interval": 0.5,
            **settings,
        }
        app, server, server_ca_file = serve_federation(cleanup, tmp_path / "tls", options)
        stack = KubeStack(
            url=f"https://127.0.0.1:{server.server_port}",
            server_ca_file=server_ca_file,
            cluster=cluster,
            issuer=issuer,
            app=app,
            values=values,
            _server=server,
        )
        assert app.extensions["esi.service"].holder.wait_ready(10), "the first lists did not complete"
        # kmock subscribes a watch to changes only after replaying the objects it holds; a change made
        # in between is lost (a real API server resumes from the resourceVersion). Tests start after.
        stores_path = stores if stores == STORES_V1BETA1 else STORES_V1
        for collection in (FEDERATIONS, AUTHORIZATIONS, stores_path, SECRETS):
            wait_until(lambda collection=collection: cluster.watching(collection) >= 1, timeout=10)
        yield stack
        issuer.stop()


def status_of(cluster: EmulatedCluster, path: str) -> dict[str, Any]:
    """The ``status`` of the object at ``path`` ({} when none)."""
    status = cluster.get(path).get("status")
    return status if isinstance(status, dict) else {}


def ready_condition(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``Ready`` condition of ``status``, if any."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def lease_holder(cluster: EmulatedCluster, name: str = "esi-federation-status") -> str | None:
    """The holderIdentity of the status Lease (None while there is none)."""
    try:
        lease = cluster.get(LEASES.format(namespace=LEASE_NAMESPACE) + "/" + name)
    except requests.HTTPError:
        return None
    holder = lease.get("spec", {}).get("holderIdentity")
    return holder if isinstance(holder, str) else None


def jsonable(value: Any) -> str:
    """Canonical JSON, for comparisons in assertion messages."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class SeenReview:
    """One TokenReview the endpoint received."""

    authorization: str | None
    body: dict[str, Any]


class ReviewEndpoint:
    """A client cluster's TokenReview API that the test scripts: it records each request's
    Authorization header and body, and answers ``status`` (a TokenReview status) with ``code``."""

    def __init__(self, ca: Any, tmp_path: Path) -> None:
        self.code = 201
        self.status: dict[str, Any] = {"authenticated": False, "error": "not scripted"}
        self.seen: list[SeenReview] = []
        tls = write_tls_files(
            tmp_path / "review-tls", ca, ca.issue(["127.0.0.1"], common_name="kube-apiserver")
        )
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                endpoint.seen.append(SeenReview(self.headers.get("Authorization"), body))
                send_json(self, endpoint.code, {"kind": "TokenReview", "status": endpoint.status})

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = server_ssl_context(tls.cert_file, tls.key_file).wrap_socket(
            self._server.socket, server_side=True
        )
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ReviewEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """The URL to put in the federation's ``spec.url``."""
        return f"https://127.0.0.1:{self._server.server_address[1]}"
