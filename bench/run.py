"""``make bench``: every benchmark of DESIGN §12 in one run; prints a table and writes bench/results.json.

.venv/bin/python -m bench.run            # the full run: 2-3 minutes on 2 cores, a minute more to build
                                         # the self-contained esi-cli when dist/esi-cli is missing or stale
.venv/bin/python -m bench.run --quick    # a smoke run of a few seconds per part; numbers are rough
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cli_bench, federation_bench, machine, manifests, webhook_bench
from bench.compare import LoadPlan, summarize
from bench.environment import REPO, create_environment
from bench.federation_bench import BURST
from bench.loadgen import run_load
from bench.results import Measurements, build_results, check_shape, format_table, write_results
from bench.scrape import counter_sum

RESULTS_FILE = REPO / "bench" / "results.json"
JWKS_WINDOW = 10_000
MAX_REQUESTS_PER_RUN = 200_000
FULL = {"rounds": 5, "seconds": 4.0, "cli_runs": cli_bench.RUNS, "jwks_top_up_s": 40.0}
QUICK = {"rounds": 1, "seconds": 2.0, "cli_runs": 3, "jwks_top_up_s": 3.0}


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark; 0 when all ran (missed targets are reported, not failures)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, no bundle build (a smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="default: %(default)s")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started, load_at_start = time.monotonic(), machine.load_average()
    with tempfile.TemporaryDirectory(prefix="esi-bench-") as work:
        measurements = _measure(Path(work), sizes, build_bundle=not args.quick)
    extras = dict(measurements.extras)
    extras["load_average"] = {"start": load_at_start, "end": machine.load_average()}
    extras["duration_s"] = round(time.monotonic() - started, 1)
    extras["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results = build_results(replace(measurements, extras=extras))
    problems = check_shape(results)
    if problems:
        print("bench: results do not have the shape of DESIGN §13: " + "; ".join(problems), file=sys.stderr)
        return 1
    write_results(results, args.output)
    print()
    print(format_table(results))
    print(f"\nwrote {args.output}")
    return 0


def _measure(work: Path, sizes: dict[str, Any], build_bundle: bool) -> Measurements:
    env = create_environment(work)
    _step(f"webhook: /mutate vs bare Flask, {sizes['rounds']} rounds of {sizes['seconds']} s each")
    webhook_plan = _plan(webhook_bench.WORKERS * webhook_bench.THREADS, sizes)
    webhook = webhook_bench.run(env, webhook_plan)
    _step("federation: starting OpenBao, the client-cluster issuer, esi-federation and the baseline")
    with federation_bench.running_federation(env) as federation:
        federation_plan = _plan(federation_bench.WORKERS * federation_bench.THREADS, sizes)
        _step(f"federation: /v1/secrets (fake, OpenBao) vs bare, {sizes['rounds']} rounds")
        load = federation_bench.measure_load(federation, federation_plan)
        _step(f"federation: JWKS fetches over at least {JWKS_WINDOW} requests")
        jwks = _jwks(federation, sizes["jwks_top_up_s"])
        _step(f"federation: a burst of {BURST} identical concurrent requests, caching off")
        burst = federation_bench.measure_burst(federation)
        _step(f"esi-cli: fetch vs python -c pass, {sizes['cli_runs']} runs each; bundle start-up")
        cli = cli_bench.run(env, federation, sizes["cli_runs"], build_bundle)
    return Measurements(
        webhook=summarize(webhook.webhook),
        webhook_baseline=summarize(webhook.baseline),
        federation_fake=summarize(load.fake),
        federation_openbao=summarize(load.openbao),
        federation_baseline=summarize(load.baseline),
        cli_fetch_s=cli.fetch_s,
        python_pass_s=cli.python_pass_s,
        jwks_fetches_per_10k=jwks["per_10k"],
        store_reads_per_burst_100=burst.store_reads_metric,
        machine=machine.describe(),
        federation_workers=federation_bench.WORKERS,
        extras={
            "importtime": cli.importtime,
            "cli_bundle_version_s": _rounded(cli.bundle_version_s),
            "cli_bundle_skipped": cli.bundle_skipped,
            "cli_details": {
                "esi_cli_version_s": round(cli.version_s, 4),
                "python_pass_resolved_binary_s": round(cli.python_pass_binary_s, 4),
                "interpreter": cli.interpreter,
                "interpreter_binary": cli.interpreter_binary,
                "runs": cli.runs,
            },
            "jwks": jwks,
            "store_burst": {
                **asdict(burst),
                "workers": federation_bench.WORKERS,
                "store": manifests.OPENBAO_STORE,
            },
            "load": {
                "generator": "bench/loadgen.py: Python threads, one keep-alive HTTPS connection each",
                "webhook": {**asdict(webhook_plan), "workers": webhook.workers, "threads": webhook.threads},
                "federation": {
                    **asdict(federation_plan),
                    "workers": federation_bench.WORKERS,
                    "threads": federation_bench.THREADS,
                },
            },
        },
    )


def _jwks(federation: federation_bench.Federation, top_up_seconds: float) -> dict[str, Any]:
    """JWKS fetches against the requests answered so far, topped up to at least 10,000 requests."""
    answered = _secrets_answered(federation)
    if answered < JWKS_WINDOW:
        run_load(
            federation.target,
            federation.secrets_request(manifests.FAKE_STORE),
            connections=federation_bench.WORKERS * federation_bench.THREADS,
            max_requests=JWKS_WINDOW - answered,
            max_seconds=top_up_seconds,
        )
        answered = _secrets_answered(federation)
    fetched, fetched_metric = federation_bench.jwks_fetches(federation)
    # Fewer requests than the window (the top-up ran out of time): all of them fall into one window, so
    # the count itself is the rate.
    per_10k = round(fetched * JWKS_WINDOW / answered, 3) if answered >= JWKS_WINDOW else fetched
    return {
        "per_10k": per_10k,
        "fetches_seen_by_issuer": fetched,
        "fetches_metric": fetched_metric,
        "requests": answered,
        "federations": 1,
        "refresh_interval_s": federation_bench.JWKS_REFRESH_INTERVAL_S,
    }


def _secrets_answered(federation: federation_bench.Federation) -> int:
    return int(counter_sum(federation.metrics(), "esi_federation_requests_total", {"route": "secrets"}))


def _plan(connections: int, sizes: dict[str, Any]) -> LoadPlan:
    return LoadPlan(
        connections=connections,
        seconds=sizes["seconds"],
        max_requests=MAX_REQUESTS_PER_RUN,
        rounds=sizes["rounds"],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
