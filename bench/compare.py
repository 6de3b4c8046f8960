"""Side-by-side load runs: a server and its baseline take turns, round after round, with the same load.

Taking turns rather than measuring one after the other spreads the machine's drift (other processes,
CPU frequency, page cache) over both sides of a ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.loadgen import LoadResult, Request, Target, merge, run_load
from bench.results import Throughput

WARMUP_SECONDS = 1.0
WARMUP_REQUESTS = 300


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: a name, where it listens, and the request it is sent."""

    name: str
    target: Target
    request: Request


@dataclass(frozen=True)
class LoadPlan:
    """How hard and how long: the same for every contender of a comparison."""

    connections: int
    seconds: float
    max_requests: int
    rounds: int


def take_turns(contenders: Sequence[Contender], plan: LoadPlan) -> dict[str, LoadResult]:
    """Warm every contender up, then run ``plan.rounds`` rounds in which each gets the same load."""
    for contender in contenders:
        run_load(
            contender.target,
            contender.request,
            connections=plan.connections,
            max_requests=WARMUP_REQUESTS,
            max_seconds=WARMUP_SECONDS,
        )
    runs: dict[str, list[LoadResult]] = {contender.name: [] for contender in contenders}
    for _ in range(plan.rounds):
        for contender in contenders:
            runs[contender.name].append(
                run_load(
                    contender.target,
                    contender.request,
                    connections=plan.connections,
                    max_requests=plan.max_requests,
                    max_seconds=plan.seconds,
                )
            )
    return {name: merge(results) for name, results in runs.items()}


def summarize(result: LoadResult) -> Throughput:
    """The numbers of a load run that go into the results."""
    return Throughput(
        per_s=result.per_s,
        p50_ms=result.percentile_ms(0.50),
        p99_ms=result.percentile_ms(0.99),
        requests=result.answered + result.transport_errors,
        failed=result.failed,
    )
