"""``POST /v1/secrets`` (3 secrets, RS256 token), fake store and OpenBao, next to a bare endpoint.

``running_federation`` starts the whole cluster-main side once: OpenBao, client-cluster-alpha's issuer,
``esi-federation serve`` with both stores, and the bare baseline under the federation's gunicorn setup.
The load comparison, the JWKS count, the merged-read burst and esi-cli's start-up all use it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import manifests
from bench.compare import Contender, LoadPlan, take_turns
from bench.environment import Environment
from bench.loadgen import LoadResult, Request, Target, run_load
from bench.processes import ServerProcess
from bench.scrape import counter_sum, scrape
from hack.client_issuer import ClientClusterIssuer
from hack.openbao import OpenBao
from hack.sa_tokens import TokenIssuer, generate_signing_key

WORKERS, THREADS = 2, 8  # esi-federation serve's defaults
# Far above any load here: the benchmark measures the server's work, not its 429s.
RATE_LIMIT_PER_S = 1_000_000
TOKEN_LIFETIME_S = 3600
BURST = 100
BURST_TIMEOUT_S = 60.0
JWKS_REFRESH_INTERVAL_S = 300  # the server refreshes a JWKS every 5 min (README)


@dataclass(frozen=True)
class Federation:
    """The running cluster-main side of the benchmarks."""

    target: Target
    baseline: Target
    server: ServerProcess
    baseline_server: ServerProcess
    issuer: ClientClusterIssuer
    openbao: Any
    token_file: Path
    client_ca_file: Path
    manifests_dir: Path
    # Never in a repr: the bearer token and the secret values must not reach a log or a traceback.
    token: str = field(repr=False)
    values: dict[str, dict[str, str]] = field(repr=False, default_factory=dict)

    def secrets_request(
        self, store: str, references: tuple[tuple[str, str], ...] = manifests.REFERENCES
    ) -> Request:
        """``POST /v1/secrets`` for ``references`` of ``store``, with the bearer token."""
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return Request("POST", "/v1/secrets", manifests.secrets_request(store, references), headers)

    def metrics(self) -> str:
        """The federation server's ``/metrics``, every worker's values summed."""
        return scrape(self.target.host, self.target.port, self.target.context)


@dataclass(frozen=True)
class LoadNumbers:
    """Both stores under load, and the baseline."""

    fake: LoadResult
    openbao: LoadResult
    baseline: LoadResult


@dataclass(frozen=True)
class BurstNumbers:
    """A burst of identical concurrent requests, and the store reads it caused."""

    requests: int
    ok: int
    seconds: float
    store_reads_metric: int
    store_reads_audit_log: int
    merged_metric: int
    store_read_mean_ms: float


@contextmanager
def running_federation(env: Environment) -> Iterator[Federation]:
    """OpenBao, the issuer, esi-federation serve and its baseline, all started; stopped afterwards."""
    with ExitStack() as stack:
        openbao_dir = env.work / "openbao"
        openbao_dir.mkdir()
        openbao = OpenBao(openbao_dir)
        openbao.start()
        stack.callback(openbao.stop)
        values = manifests.seed_secrets()
        kv = openbao.client().secrets.kv.v2
        for key, data in values.items():
            kv.create_or_update_secret(path=key, secret=data, mount_point="secret")
        issuer = ClientClusterIssuer(TokenIssuer(keys=[generate_signing_key("RS256")])).start()
        stack.callback(issuer.stop)
        directory = env.work / "manifests"
        manifests.write_manifests(
            directory,
            {
                "vault-prod": manifests.fake_store(values),
                "vault-openbao": [
                    manifests.openbao_store(openbao.address),
                    manifests.token_secret(openbao.root_token),
                ],
                "client-cluster-alpha": issuer.federation_manifest(
                    manifests.CLUSTER, audiences=[manifests.AUDIENCE]
                ),
                "allow-alpha-monitoring": manifests.authorization(
                    [manifests.FAKE_STORE, manifests.OPENBAO_STORE]
                ),
            },
        )
        sizing = ["--workers", str(WORKERS), "--threads", str(THREADS)]
        server, target = env.start_server(
            "federation",
            [
                env.program("esi-federation"),
                "serve",
                "--manifests",
                str(directory),
                "--rate-limit",
                str(RATE_LIMIT_PER_S),
                # Every request reads the store (identical reads in flight are still merged).
                "--store-cache-ttl",
                "0",
                *sizing,
            ],
            ready_path="/readyz",
        )
        stack.callback(server.stop)
        baseline, baseline_target = env.start_server(
            "federation-baseline", [sys.executable, "-m", "bench.baseline", "federation", *sizing]
        )
        stack.callback(baseline.stop)
        token = issuer.mint(
            manifests.NAMESPACE, manifests.SERVICE_ACCOUNT, [manifests.AUDIENCE], lifetime_s=TOKEN_LIFETIME_S
        )
        token_file = env.work / "token"
        token_file.write_text(token, encoding="utf-8")
        token_file.chmod(0o600)
        client_ca_file = env.work / "client-ca.crt"
        client_ca_file.write_text(issuer.ca_pem, encoding="utf-8")
        yield Federation(
            target=target,
            baseline=baseline_target,
            server=server,
            baseline_server=baseline,
            issuer=issuer,
            openbao=openbao,
            token_file=token_file,
            client_ca_file=client_ca_file,
            manifests_dir=directory,
            token=token,
            values=values,
        )


def measure_load(federation: Federation, plan: LoadPlan) -> LoadNumbers:
    """The fake store, OpenBao and the bare endpoint, loaded in turns with the same 3-secret request,
    in the pattern ``plan`` names (keep-alive or a new connection per request)."""
    fake = federation.secrets_request(manifests.FAKE_STORE)
    openbao = federation.secrets_request(manifests.OPENBAO_STORE)
    results = take_turns(
        [
            Contender("baseline", federation.baseline, fake, federation.baseline_server.cpu_seconds),
            Contender("fake", federation.target, fake, federation.server.cpu_seconds),
            Contender("openbao", federation.target, openbao, federation.server.cpu_seconds),
        ],
        plan,
    )
    return LoadNumbers(results["fake"], results["openbao"], results["baseline"])


def jwks_fetches(federation: Federation) -> tuple[int, int]:
    """JWKS fetches so far: as the issuer counted them, and as the server's metric counts them."""
    metric = counter_sum(federation.metrics(), "esi_federation_jwks_fetches_total")
    return federation.issuer.jwks_requests, int(metric)


def measure_burst(federation: Federation, target: Target | None = None) -> BurstNumbers:
    """``BURST`` identical concurrent requests for one OpenBao key, each on a new connection: how many
    reads reach OpenBao. Against the benchmark's server (caching off) unless ``target`` names another.
    """
    target = target or federation.target
    reference = (manifests.REFERENCES[1],)
    request = federation.secrets_request(manifests.OPENBAO_STORE, reference)
    path = f"secret/data/{reference[0][0]}"
    store = {"store": manifests.OPENBAO_STORE}
    before = scrape(target.host, target.port, target.context)
    audit_before = federation.openbao.audit_count(path, "read")
    result = run_load(target, request, connections=BURST, max_requests=BURST, max_seconds=BURST_TIMEOUT_S)
    after = scrape(target.host, target.port, target.context)

    def delta(name: str) -> float:
        return counter_sum(after, name, store) - counter_sum(before, name, store)

    reads = delta("esi_federation_store_read_duration_seconds_count")
    return BurstNumbers(
        requests=result.answered + result.transport_errors,
        ok=result.ok,
        seconds=round(result.elapsed_s, 3),
        store_reads_metric=int(delta("esi_federation_store_reads_total")),
        store_reads_audit_log=federation.openbao.audit_count(path, "read") - audit_before,
        merged_metric=int(delta("esi_federation_store_merged_reads_total")),
        store_read_mean_ms=round(
            delta("esi_federation_store_read_duration_seconds_sum") * 1000 / reads if reads else 0.0, 2
        ),
    )
