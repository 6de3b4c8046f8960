"""A rollout storm: many esi-cli processes started within seconds, each one pod's esi-init.

Every pod gets its own projected token (its own pod name, so no two requests carry the same token), its
own output directory, and runs ``esi-cli fetch`` of the 3 secrets from the OpenBao store over a new TLS
connection. The program is the self-contained esi-cli of the esi-init image (``hack/build-esi-cli.sh``),
what pods run; the venv's console script when it cannot be built (``--quick``, no musl-gcc). The server
runs with the default settings (rate limit and store cache included) of either ``esi-federation serve``
or a default chart install. Measured: pods served per second, the time from each
process's start to its exit after writing its files, errors (a non-zero exit or a file whose bytes differ
from the store's), and the reads that reached OpenBao (its audit log, per key, and the server's metric).
"""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import manifests
from bench.cli_bench import fetch_environment
from bench.compare import handshake_cost
from bench.environment import Environment
from bench.federation_bench import Federation
from bench.loadgen import Target, run_load
from bench.processes import ServerProcess
from bench.scrape import counter_sum, scrape

POD_TIMEOUT_S = 60.0
HANDSHAKE_SECONDS = 2.0
HANDSHAKE_CONNECTIONS = 8
WARMUP_REQUESTS = 32
# The server's own rate limit stays as the defaults set it, so the tokens must come from one cluster
# and one ServiceAccount, as the pods of one Deployment do; only the pod name differs.
POD_NAME = "storm-{index}"


@dataclass(frozen=True)
class StormPlan:
    """How many pods, started evenly over how many seconds."""

    pods: int
    spread_s: float


@dataclass(frozen=True)
class PodRun:
    """One pod's esi-cli: its start and exit (monotonic seconds) and its exit status."""

    started: float
    ended: float
    returncode: int


@dataclass(frozen=True)
class StormNumbers:
    """What one storm measured."""

    label: str
    key_type: str
    serve_flags: tuple[str, ...]
    pods: int
    spread_s: float
    errors: int
    pods_per_s: float
    p50_s: float
    p99_s: float
    max_s: float
    store_reads_metric: int
    store_reads_by_key: Mapping[str, int]
    merged_reads_metric: int
    server_cpu_ms_per_pod: float
    # CPU of one esi-cli process (user + system), what the pods' nodes spend.
    cli_cpu_ms_per_pod: float
    # Which esi-cli the pods ran: "self-contained" (the esi-init image's) or "venv".
    cli: str
    handshake_cpu_ms: float
    error_samples: Sequence[str] = field(default_factory=tuple)

    @property
    def store_reads_per_key_max(self) -> int:
        """The most reads any one key caused (OpenBao's audit log)."""
        return max(self.store_reads_by_key.values(), default=0)

    def as_dict(self) -> dict[str, Any]:
        """The storm's block of bench/results.json."""
        return {
            "pods": self.pods,
            "spread_s": self.spread_s,
            "errors": self.errors,
            "pods_per_s": round(self.pods_per_s, 1),
            "p50_s": round(self.p50_s, 3),
            "p99_s": round(self.p99_s, 3),
            "max_s": round(self.max_s, 3),
            "store_reads": self.store_reads_metric,
            "store_reads_by_key": dict(self.store_reads_by_key),
            "store_reads_per_key_max": self.store_reads_per_key_max,
            "merged_reads": self.merged_reads_metric,
            "server_cpu_ms_per_pod": round(self.server_cpu_ms_per_pod, 3),
            "cli_cpu_ms_per_pod": round(self.cli_cpu_ms_per_pod, 3),
            "esi_cli": self.cli,
            "handshake_cpu_ms": round(self.handshake_cpu_ms, 3),
            "tls_key": self.key_type,
            "serve_flags": list(self.serve_flags),
            "error_samples": list(self.error_samples),
        }


@dataclass(frozen=True)
class StormServer:
    """A federation server started for storms: its flags, key type, process and address."""

    label: str
    key_type: str
    serve_flags: tuple[str, ...]
    process: ServerProcess
    target: Target
    ca_file: Path


@contextmanager
def storm_server(
    env: Environment, federation: Federation, *, label: str, key_type: str, serve_flags: Sequence[str]
) -> Iterator[StormServer]:
    """``esi-federation serve`` with ``serve_flags`` and a ``key_type`` certificate, warmed up."""
    tls = env.issue_tls(f"storm-{label}-tls", key_type)
    process, target = env.start_server(
        f"storm-{label}",
        [env.program("esi-federation"), "serve", "--manifests", str(federation.manifests_dir), *serve_flags],
        ready_path="/readyz",
        tls=tls,
    )
    try:
        _warm_up(federation, target)
        yield StormServer(label, key_type, tuple(serve_flags), process, target, tls.files.ca_file)
    finally:
        process.stop()


@dataclass(frozen=True)
class PodProgram:
    """The esi-cli the pods run, and which one it is ("self-contained" or "venv")."""

    path: str
    kind: str


def run_storm(
    env: Environment, federation: Federation, server: StormServer, plan: StormPlan, program: PodProgram
) -> StormNumbers:
    """The handshake cost of ``server``, then ``plan.pods`` runs of ``program`` against it."""
    handshakes = handshake_cost(
        server.target, server.process.cpu_seconds, HANDSHAKE_CONNECTIONS, HANDSHAKE_SECONDS
    )
    pods_dir = env.work / f"storm-{server.label}"
    commands = _pod_commands(
        env, federation, server.target, server.ca_file, program.path, pods_dir=pods_dir, pods=plan.pods
    )
    keys = sorted({key for key, _ in manifests.REFERENCES})
    before, audit_before = scrape_of(server.target), _audit(federation, keys)
    cpu_before, children_before = server.process.cpu_seconds(), _children_cpu_seconds()
    runs = _launch(commands, plan)
    cpu = server.process.cpu_seconds() - cpu_before
    cli_cpu = _children_cpu_seconds() - children_before
    after, audit_after = scrape_of(server.target), _audit(federation, keys)
    errors, samples = _check(runs, commands, federation.values)
    store = {"store": manifests.OPENBAO_STORE}
    durations = sorted(run.ended - run.started for run in runs)
    first, last = min(run.started for run in runs), max(run.ended for run in runs)
    return StormNumbers(
        label=server.label,
        key_type=server.key_type,
        serve_flags=server.serve_flags,
        pods=plan.pods,
        spread_s=plan.spread_s,
        errors=errors,
        pods_per_s=(plan.pods - errors) / (last - first) if last > first else 0.0,
        p50_s=_percentile(durations, 0.50),
        p99_s=_percentile(durations, 0.99),
        max_s=durations[-1],
        store_reads_metric=int(
            counter_sum(after, "esi_federation_store_reads_total", store)
            - counter_sum(before, "esi_federation_store_reads_total", store)
        ),
        store_reads_by_key={key: audit_after[key] - audit_before[key] for key in keys},
        merged_reads_metric=int(
            counter_sum(after, "esi_federation_store_merged_reads_total", store)
            - counter_sum(before, "esi_federation_store_merged_reads_total", store)
        ),
        server_cpu_ms_per_pod=cpu * 1000 / plan.pods,
        cli_cpu_ms_per_pod=cli_cpu * 1000 / plan.pods,
        cli=program.kind,
        handshake_cpu_ms=handshakes.server_cpu_ms_per_request,
        error_samples=samples,
    )


def scrape_of(target: Target) -> str:
    """The server's ``/metrics``."""
    return scrape(target.host, target.port, target.context)


@dataclass(frozen=True)
class _PodCommand:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    out_dir: Path
    log_file: Path


def _pod_commands(
    env: Environment,
    federation: Federation,
    target: Target,
    ca_file: Path,
    program: str,
    *,
    pods_dir: Path,
    pods: int,
) -> list[_PodCommand]:
    commands = []
    for index in range(pods):
        pod_dir = pods_dir / f"pod-{index}"
        out_dir = pod_dir / "secrets"
        out_dir.mkdir(parents=True)
        token_file = pod_dir / "token"
        token = federation.issuer.mint(
            manifests.NAMESPACE,
            manifests.SERVICE_ACCOUNT,
            [manifests.AUDIENCE],
            lifetime_s=3600,
            pod_name=POD_NAME.format(index=index),
        )
        token_file.write_text(token, encoding="utf-8")
        token_file.chmod(0o600)
        variables = {
            **fetch_environment(env, federation, out_dir),
            "ESI_SERVER": f"https://{target.host}:{target.port}",
            "ESI_SERVER_CA_FILE": str(ca_file),
            "ESI_TOKEN_FILE": str(token_file),
            "ESI_STORE": manifests.OPENBAO_STORE,
        }
        commands.append(_PodCommand((program, "fetch"), variables, out_dir, pod_dir / "log"))
    return commands


def _launch(commands: Sequence[_PodCommand], plan: StormPlan) -> list[PodRun]:
    """Start each command at its slot of an even schedule, each from its own thread; wait for all."""
    runs: list[PodRun | None] = [None] * len(commands)
    step = plan.spread_s / max(1, len(commands) - 1) if len(commands) > 1 else 0.0
    origin = time.monotonic() + 0.2

    def pod(index: int) -> None:
        delay = origin + index * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        command = commands[index]
        started = time.monotonic()
        with command.log_file.open("wb") as log:
            process = subprocess.Popen(
                list(command.argv),
                env=dict(command.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            # A blocking wait, killed by a timer: subprocess's own timeout polls every 50 ms, which for
            # 300 waiting threads is CPU taken from the pods, and up to 50 ms added to each pod's time.
            timed_out = threading.Event()

            def expire() -> None:
                timed_out.set()
                process.kill()

            timer = threading.Timer(POD_TIMEOUT_S, expire)
            timer.start()
            try:
                returncode = process.wait()
            finally:
                timer.cancel()
        runs[index] = PodRun(started, time.monotonic(), -1 if timed_out.is_set() else returncode)

    threads = [threading.Thread(target=pod, args=(index,), daemon=True) for index in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(plan.spread_s + POD_TIMEOUT_S * 2)
    return [run if run is not None else PodRun(origin, time.monotonic(), -2) for run in runs]


def _check(
    runs: Sequence[PodRun], commands: Sequence[_PodCommand], values: Mapping[str, Mapping[str, str]]
) -> tuple[int, list[str]]:
    """Pods that failed: a non-zero exit, or files that are missing or differ from the store's values.

    The samples name the pod and what was wrong, never a value.
    """
    expected = {f"{key}.{prop}": values[key][prop].encode() for key, prop in manifests.REFERENCES}
    errors, samples = 0, list[str]()
    for index, (run, command) in enumerate(zip(runs, commands, strict=True)):
        problem = None
        if run.returncode != 0:
            problem = f"pod {index}: exit {run.returncode}, see {command.log_file}"
        else:
            written = {path.name: path.read_bytes() for path in command.out_dir.iterdir()}
            if written != expected:
                problem = f"pod {index}: files differ from the store's (names: {sorted(written)})"
        if problem is not None:
            errors += 1
            if len(samples) < 3:
                samples.append(problem)
    return errors, samples


def _warm_up(federation: Federation, target: Target) -> None:
    """Load the code paths, the JWKS and the OpenBao client in every worker, as a running server has.

    The OpenBao request asks for a key that does not exist, so that no storm key is cached by it.
    """
    for store, references in (
        (manifests.FAKE_STORE, manifests.REFERENCES),
        (manifests.OPENBAO_STORE, (("storm-warm-up", "none"),)),
    ):
        run_load(
            target,
            federation.secrets_request(store, references),
            connections=HANDSHAKE_CONNECTIONS,
            max_requests=WARMUP_REQUESTS,
            max_seconds=5.0,
            fresh_connections=True,
        )


def _children_cpu_seconds() -> float:
    """CPU of this process's children that have exited: during a storm, the pods' esi-cli processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _audit(federation: Federation, keys: Sequence[str]) -> dict[str, int]:
    return {key: int(federation.openbao.audit_count(f"secret/data/{key}", "read")) for key in keys}


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]
