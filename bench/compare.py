"""Side-by-side load runs: a server and its baseline take turns, round after round, with the same load.

Taking turns rather than measuring one after the other spreads the machine's drift (other processes,
CPU frequency, page cache) over both sides of a ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bench.loadgen import LoadResult, Request, Target, merge, run_handshakes, run_load
from bench.results import Throughput

WARMUP_SECONDS = 1.0
WARMUP_REQUESTS = 300


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: a name, where it listens, the request it is sent, and how to read the
    CPU time its server has used."""

    name: str
    target: Target
    request: Request
    cpu_seconds: Callable[[], float]


@dataclass(frozen=True)
class LoadPlan:
    """How hard and how long, and in which pattern: the same for every contender of a comparison."""

    connections: int
    seconds: float
    max_requests: int
    rounds: int
    # The pod-start pattern: a new TLS connection for every request.
    fresh_connections: bool = False


def take_turns(contenders: Sequence[Contender], plan: LoadPlan) -> dict[str, LoadResult]:
    """Warm every contender up, then run ``plan.rounds`` rounds in which each gets the same load."""
    for contender in contenders:
        run_load(
            contender.target,
            contender.request,
            connections=plan.connections,
            max_requests=WARMUP_REQUESTS,
            max_seconds=WARMUP_SECONDS,
            fresh_connections=plan.fresh_connections,
        )
    runs: dict[str, list[LoadResult]] = {contender.name: [] for contender in contenders}
    for _ in range(plan.rounds):
        for contender in contenders:
            runs[contender.name].append(_measured_run(contender, plan))
    return {name: merge(results) for name, results in runs.items()}


def _measured_run(contender: Contender, plan: LoadPlan) -> LoadResult:
    cpu_before = contender.cpu_seconds()
    result = run_load(
        contender.target,
        contender.request,
        connections=plan.connections,
        max_requests=plan.max_requests,
        max_seconds=plan.seconds,
        fresh_connections=plan.fresh_connections,
    )
    return replace(result, server_cpu_s=contender.cpu_seconds() - cpu_before)


def handshake_cost(
    target: Target, cpu_seconds: Callable[[], float], connections: int, seconds: float
) -> LoadResult:
    """TLS handshakes without a request, as many as ``connections`` threads make in ``seconds``, with
    the server CPU they cost."""
    before = cpu_seconds()
    result = run_handshakes(target, connections=connections, max_handshakes=1_000_000, max_seconds=seconds)
    return replace(result, server_cpu_s=cpu_seconds() - before)


def summarize(result: LoadResult) -> Throughput:
    """The numbers of a load run that go into the results."""
    return Throughput(
        per_s=result.per_s,
        p50_ms=result.percentile_ms(0.50),
        p99_ms=result.percentile_ms(0.99),
        requests=result.answered + result.transport_errors,
        failed=result.failed,
        cpu_ms_per_request=result.server_cpu_ms_per_request,
    )
