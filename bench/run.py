"""``make bench``: every benchmark in one run; prints a table and writes bench/results.json.

.venv/bin/python -m bench.run            # the full run: about 5 minutes on 2 cores, a minute more to build
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
from bench.chart_defaults import chart_defaults
from bench.compare import LoadPlan, handshake_cost, summarize
from bench.environment import LOG_DIR, REPO, Environment, create_environment
from bench.federation_bench import BURST
from bench.loadgen import run_load
from bench.profile import profile_servers
from bench.results import Measurements, build_results, check_shape, format_table, write_results
from bench.scrape import counter_sum
from bench.startup import ensure_bundle
from bench.storm import PodProgram, StormNumbers, StormPlan, run_storm, storm_server
from federation.settings import Settings

RESULTS_FILE = REPO / "bench" / "results.json"
JWKS_WINDOW = 10_000
MAX_REQUESTS_PER_RUN = 200_000
FULL = {
    "rounds": 5,
    "seconds": 4.0,
    "pod_start_rounds": 4,
    "pod_start_seconds": 3.0,
    "handshake_seconds": 2.0,
    "cli_runs": cli_bench.RUNS,
    "jwks_top_up_s": 40.0,
    "storm": StormPlan(pods=300, spread_s=10.0),
    "profile_requests": 2000,
}
QUICK = {
    "rounds": 1,
    "seconds": 2.0,
    "pod_start_rounds": 1,
    "pod_start_seconds": 2.0,
    "handshake_seconds": 1.0,
    "cli_runs": 3,
    "jwks_top_up_s": 3.0,
    "storm": StormPlan(pods=40, spread_s=4.0),
    "profile_requests": 200,
}
PROFILED = ("bare", "federation", "webhook")
PROFILE_TOP = 10
# Between a storm and the burst on the same server: longer than the default store cache holds a read.
CACHE_PAUSE_S = Settings.store_cache_ttl + 1.5


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark; 0 when all ran (missed targets are reported, not failures)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, no bundle build (a smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="default: %(default)s")
    parser.add_argument(
        "--storm-pods", type=int, metavar="N", help="pods per storm (default: 300, quick: 40)"
    )
    parser.add_argument(
        "--storm-seconds", type=float, metavar="S", help="seconds they start within (default: 10, quick: 4)"
    )
    args = parser.parse_args(argv)
    if (args.storm_pods is not None and args.storm_pods < 1) or (
        args.storm_seconds is not None and args.storm_seconds <= 0
    ):
        parser.error("--storm-pods must be at least 1 and --storm-seconds positive")
    sizes = dict(QUICK if args.quick else FULL)
    storm = sizes["storm"]
    sizes["storm"] = StormPlan(args.storm_pods or storm.pods, args.storm_seconds or storm.spread_s)
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
        print("bench: results do not have the documented shape: " + "; ".join(problems), file=sys.stderr)
        return 1
    write_results(results, args.output)
    print()
    print(format_table(results))
    print(f"\nwrote {args.output}")
    return 0


def _measure(work: Path, sizes: dict[str, Any], build_bundle: bool) -> Measurements:
    env = create_environment(work)
    _step(f"profile: one request of each app in-process, {sizes['profile_requests']} requests each")
    profiles = profile_servers(sorted(PROFILED), sizes["profile_requests"], PROFILE_TOP)
    _step(f"webhook: /mutate vs bare Flask, keep-alive and pod-start, {sizes['rounds']} rounds")
    webhook_plan = _plan(webhook_bench.WORKERS * webhook_bench.THREADS, sizes)
    webhook_fresh = _pod_start_plan(webhook_plan, sizes)
    webhook = webhook_bench.run(env, webhook_plan, webhook_fresh, sizes["handshake_seconds"])
    _step("federation: starting OpenBao, the client-cluster issuer, esi-federation and the baseline")
    with federation_bench.running_federation(env) as federation:
        federation_plan = _plan(federation_bench.WORKERS * federation_bench.THREADS, sizes)
        federation_fresh = _pod_start_plan(federation_plan, sizes)
        _step(f"federation: /v1/secrets (fake, OpenBao) vs bare, keep-alive, {sizes['rounds']} rounds")
        load = federation_bench.measure_load(federation, federation_plan)
        _step(f"federation: the same, a new TLS connection per request, {sizes['pod_start_rounds']} rounds")
        fresh = federation_bench.measure_load(federation, federation_fresh)
        handshakes = _federation_handshakes(federation, federation_fresh.connections, sizes)
        _step(f"federation: JWKS fetches over at least {JWKS_WINDOW} requests")
        jwks = _jwks(federation, sizes["jwks_top_up_s"])
        _step(f"federation: a burst of {BURST} identical concurrent requests, caching off")
        burst = federation_bench.measure_burst(federation)
        program = _storm_program(env, build_bundle)
        storms, burst_default = _storms(env, federation, sizes["storm"], program)
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
        store_reads_per_burst_100=burst_default.store_reads_metric,
        machine=machine.describe(),
        federation_workers=federation_bench.WORKERS,
        pod_start={
            "webhook": summarize(webhook.pod_start_webhook),
            "webhook_baseline": summarize(webhook.pod_start_baseline),
            "federation_fake": summarize(fresh.fake),
            "federation_openbao": summarize(fresh.openbao),
            "federation_baseline": summarize(fresh.baseline),
        },
        handshake_cpu_ms={
            "webhook": webhook.handshake_webhook.server_cpu_ms_per_request,
            "webhook_baseline": webhook.handshake_baseline.server_cpu_ms_per_request,
            "federation_fake": handshakes["federation"],
            "federation_openbao": handshakes["federation"],
            "federation_baseline": handshakes["federation_baseline"],
        },
        storms={name: storm.as_dict() for name, storm in storms.items()},
        extras={
            "profile": profiles,
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
                **asdict(burst_default),
                "settings": "esi-federation serve's defaults",
                "cache_off": asdict(burst),
                "workers": federation_bench.WORKERS,
                "store": manifests.OPENBAO_STORE,
            },
            "load": {
                "generator": "bench/loadgen.py: Python threads; keep-alive: one HTTPS connection each; "
                "pod-start: a new HTTPS connection per request",
                "webhook": {**asdict(webhook_plan), "workers": webhook.workers, "threads": webhook.threads},
                "webhook_pod_start": asdict(webhook_fresh),
                "federation": {
                    **asdict(federation_plan),
                    "workers": federation_bench.WORKERS,
                    "threads": federation_bench.THREADS,
                },
                "federation_pod_start": asdict(federation_fresh),
                "handshake_seconds": sizes["handshake_seconds"],
            },
        },
    )


def _federation_handshakes(
    federation: federation_bench.Federation, connections: int, sizes: dict[str, Any]
) -> dict[str, float]:
    seconds = sizes["handshake_seconds"]
    server = handshake_cost(federation.target, federation.server.cpu_seconds, connections, seconds)
    baseline = handshake_cost(
        federation.baseline, federation.baseline_server.cpu_seconds, connections, seconds
    )
    return {
        "federation": server.server_cpu_ms_per_request,
        "federation_baseline": baseline.server_cpu_ms_per_request,
    }


def _storm_program(env: Environment, build_bundle: bool) -> PodProgram:
    """The esi-cli of the esi-init image, which pods run; the venv's when it cannot be built."""
    if build_bundle:
        _step("esi-cli: the self-contained build the storm's pods run (built when its sources changed)")
        executable, _ = ensure_bundle(REPO, LOG_DIR / "build-esi-cli.log")
        if executable is not None:
            return PodProgram(str(executable), "self-contained")
    return PodProgram(env.program("esi-cli"), "venv")


def _storms(
    env: Environment, federation: federation_bench.Federation, plan: StormPlan, program: PodProgram
) -> tuple[dict[str, StormNumbers], federation_bench.BurstNumbers]:
    """Both storms, and the burst against the server with ``esi-federation serve``'s defaults."""
    storms: dict[str, StormNumbers] = {}
    _step(f"storm: {plan.pods} esi-cli processes in {plan.spread_s:g} s, esi-federation serve's defaults")
    with storm_server(env, federation, label="serve_defaults", key_type="ec-p256", serve_flags=()) as server:
        storms["serve_defaults"] = run_storm(env, federation, server, plan, program)
        time.sleep(CACHE_PAUSE_S)
        _step(f"storm server: a burst of {BURST} identical concurrent requests, default settings")
        burst = federation_bench.measure_burst(federation, server.target)
    defaults = chart_defaults()
    _step(f"storm: the same with a default chart install's flags and a {defaults.key_type} certificate")
    with storm_server(
        env,
        federation,
        label="chart_defaults",
        key_type=defaults.key_type,
        serve_flags=defaults.serve_flags,
    ) as server:
        storms["chart_defaults"] = run_storm(env, federation, server, plan, program)
    return storms, burst


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


def _pod_start_plan(plan: LoadPlan, sizes: dict[str, Any]) -> LoadPlan:
    return replace(
        plan,
        rounds=sizes["pod_start_rounds"],
        seconds=sizes["pod_start_seconds"],
        fresh_connections=True,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
