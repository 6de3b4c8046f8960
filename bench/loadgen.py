"""A small closed-loop HTTPS load generator, bounded in count and time, in two patterns.

**keep-alive**: one connection per thread. All threads start together; each opens its connection with its
first request and then sends the same request again and again over it until the shared request budget or
the deadline runs out. Connections are not opened ahead: a gunicorn ``gthread`` worker holds a thread for
a connection from its handshake until its first request, so idle pre-opened connections would starve it.
Latency is measured per request, from sending to the last byte of the answer.

**pod-start** (``fresh_connections=True``): every request on a new TLS connection with
``Connection: close``, as each esi-init makes exactly one; latency then runs from the TCP connect to the
last byte, handshake included.

``run_handshakes`` opens TLS connections and closes them without a request: the server's cost of a
handshake alone.

The generator runs in the benchmark's own process, so it competes with the servers for the same cores:
absolute numbers are modest, and only the ratios between two servers measured with the same settings
mean something.
"""

from __future__ import annotations

import http.client
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

REQUEST_TIMEOUT_S = 30.0


class LoadError(Exception):
    """The load cannot be generated as asked (a target outside 127.0.0.0/8)."""


@dataclass(frozen=True)
class Target:
    """Where the load goes: a loopback address and the TLS context that trusts the server."""

    host: str
    port: int
    context: ssl.SSLContext

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.host).is_loopback:
            raise LoadError(f"load goes to 127.0.0.0/8 only, not {self.host}")


@dataclass(frozen=True)
class Request:
    """The one request every thread repeats."""

    method: str
    path: str
    body: bytes = b""
    # Not in the repr: headers carry the bearer token.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class LoadResult:
    """What a run measured: answers by status, transport errors, and every latency (seconds, sorted)."""

    elapsed_s: float
    latencies_s: Sequence[float]
    statuses: Mapping[int, int]
    transport_errors: int
    # CPU seconds the server's processes used during the run, when the caller measured it.
    server_cpu_s: float = 0.0

    @property
    def answered(self) -> int:
        """Requests that got an HTTP answer, whatever its status."""
        return len(self.latencies_s)

    @property
    def ok(self) -> int:
        """Requests answered with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def failed(self) -> int:
        """Requests answered with a non-2xx status or lost to a transport error."""
        return self.answered - self.ok + self.transport_errors

    @property
    def per_s(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float:
        """The server's CPU time per answered request, in milliseconds: steadier than throughput on a
        machine that other work shares."""
        return self.server_cpu_s * 1000.0 / self.answered if self.answered else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """The latency below which ``fraction`` of the answers fall, in milliseconds (nearest rank)."""
        if not self.latencies_s:
            return 0.0
        rank = min(len(self.latencies_s) - 1, max(0, round(fraction * len(self.latencies_s)) - 1))
        return self.latencies_s[rank] * 1000.0


@dataclass
class _Shared:
    tickets: itertools.count[int]
    max_requests: int
    deadline: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0

    def take_ticket(self) -> bool:
        # itertools.count's next() is atomic under the GIL: no lock on the hot path.
        return next(self.tickets) < self.max_requests and time.perf_counter() < self.deadline

    def add(self, latencies: list[float], statuses: Counter[int], errors: int) -> None:
        with self.lock:
            self.latencies.extend(latencies)
            self.statuses.update(statuses)
            self.transport_errors += errors


def run_load(
    target: Target,
    request: Request,
    *,
    connections: int,
    max_requests: int,
    max_seconds: float,
    fresh_connections: bool = False,
) -> LoadResult:
    """Send ``request`` from ``connections`` threads until either bound is reached: over one keep-alive
    connection each, or (``fresh_connections``) over a new connection per request."""
    worker = partial(_fresh_worker if fresh_connections else _worker, request)
    return _run_threads(worker, target, connections, max_requests, max_seconds)


def run_handshakes(
    target: Target, *, connections: int, max_handshakes: int, max_seconds: float
) -> LoadResult:
    """Open TLS connections from ``connections`` threads and close each right after its handshake.

    Each handshake counts as an answered "request" with status 200 and its connect-to-handshake latency.
    """
    return _run_threads(_handshake_worker, target, connections, max_handshakes, max_seconds)


def _run_threads(
    worker: Callable[[Target, _Shared, threading.Barrier], None],
    target: Target,
    connections: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    shared = _Shared(itertools.count(), max_requests)
    start_line = threading.Barrier(connections + 1)
    threads = [
        threading.Thread(target=worker, args=(target, shared, start_line), daemon=True)
        for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    shared.deadline = time.perf_counter() + max_seconds
    started = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join(max_seconds + REQUEST_TIMEOUT_S * 2)
    elapsed = time.perf_counter() - started
    return LoadResult(elapsed, sorted(shared.latencies), dict(shared.statuses), shared.transport_errors)


def _worker(
    request: Request,
    target: Target,
    shared: _Shared,
    start_line: threading.Barrier,
) -> None:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    # Opened by its first request; http.client opens it again after a close.
    conn = http.client.HTTPSConnection(
        target.host, target.port, context=target.context, timeout=REQUEST_TIMEOUT_S
    )
    start_line.wait()
    while shared.take_ticket():
        sent = time.perf_counter()
        try:
            conn.request(request.method, request.path, body=request.body, headers=dict(request.headers))
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            continue
        latencies.append(time.perf_counter() - sent)
        statuses[response.status] += 1
        if response.will_close:
            conn.close()
    conn.close()
    shared.add(latencies, statuses, errors)


def _fresh_worker(
    request: Request,
    target: Target,
    shared: _Shared,
    start_line: threading.Barrier,
) -> None:
    headers = {**request.headers, "Connection": "close"}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    start_line.wait()
    while shared.take_ticket():
        sent = time.perf_counter()
        conn = http.client.HTTPSConnection(
            target.host, target.port, context=target.context, timeout=REQUEST_TIMEOUT_S
        )
        try:
            conn.request(request.method, request.path, body=request.body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            continue
        finally:
            conn.close()
        latencies.append(time.perf_counter() - sent)
        statuses[response.status] += 1
    shared.add(latencies, statuses, errors)


def _handshake_worker(
    target: Target,
    shared: _Shared,
    start_line: threading.Barrier,
) -> None:
    latencies: list[float] = []
    errors = 0
    start_line.wait()
    while shared.take_ticket():
        started = time.perf_counter()
        try:
            with (
                socket.create_connection((target.host, target.port), timeout=REQUEST_TIMEOUT_S) as raw,
                target.context.wrap_socket(raw, server_hostname=target.host),
            ):
                latencies.append(time.perf_counter() - started)
        except OSError:
            errors += 1
    shared.add(latencies, Counter({200: len(latencies)}), errors)


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs of the same load as one: times, answers and errors added, latencies pooled."""
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    return LoadResult(
        elapsed_s=sum(result.elapsed_s for result in results),
        latencies_s=sorted(latency for result in results for latency in result.latencies_s),
        statuses=dict(statuses),
        transport_errors=sum(result.transport_errors for result in results),
        server_cpu_s=sum(result.server_cpu_s for result in results),
    )
