"""``esi-federation serve`` as a real gunicorn over TLS: secrets, metrics, logs, shutdown, throughput."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from hack.certs import create_ca, write_tls_files
from hack.client_issuer import ClientClusterIssuer
from tests.federation.helpers_requests import metric_value
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    authorization,
    fake_store,
    seed_values,
)

# One server for the module, and the last test stops it: the tests must run in order on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve-gunicorn")]

REPO = Path(__file__).resolve().parents[2]
THREE_SECRETS = [
    {"store": "vault-prod", "key": "db-credentials", "property": "password"},
    {"store": "vault-prod", "key": "db-credentials", "property": "username"},
    {"store": "vault-prod", "key": "api-keys", "property": "service-a-token"},
]


@dataclass
class Served:
    """A running ``esi-federation serve`` and what a client needs to talk to it."""

    process: subprocess.Popen[bytes]
    url: str
    ca_file: str
    issuer: ClientClusterIssuer
    values: dict[str, str]
    stderr_path: Path
    metrics_dir: Path
    secrets_requests: int = 0
    counting: threading.Lock = field(default_factory=threading.Lock)

    def post(self, token: str, session: requests.Session | None = None, **headers: str) -> requests.Response:
        with self.counting:
            self.secrets_requests += 1
        return (session or requests).post(
            self.url + "/v1/secrets",
            json={"secrets": THREE_SECRETS},
            headers={"Authorization": f"Bearer {token}", **headers},
            verify=self.ca_file,
            timeout=30,
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, verify=self.ca_file, timeout=30)

    def mint(self) -> str:
        return self.issuer.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, ca_file: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"esi-federation serve exited with {process.returncode}")
        try:
            if requests.get(url + "/readyz", verify=ca_file, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("esi-federation serve did not become ready")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    values = seed_values()
    with ClientClusterIssuer() as issuer:
        manifests = tmp / "manifests"
        manifests.mkdir()
        documents = [
            fake_store(
                "vault-prod",
                {
                    "db-credentials": {"username": values["username"], "password": values["password"]},
                    "api-keys": {"service-a-token": values["service-a-token"]},
                },
            ),
            issuer.federation_manifest(CLUSTER, audiences=[AUDIENCE]),
            authorization("allow-alpha-monitoring"),
        ]
        (manifests / "seed.yaml").write_text(yaml.safe_dump_all(documents), encoding="utf-8")
        ca = create_ca("federation server e2e CA")
        tls = write_tls_files(tmp / "tls", ca, ca.issue(["127.0.0.1"]))
        port = _free_port()
        stderr_path = tmp / "stderr.log"
        metrics_dir = tmp / "metrics"
        metrics_dir.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        command = [
            *(str(Path(sys.executable).parent / "esi-federation"), "serve"),
            *("--manifests", str(manifests), "--bind", f"127.0.0.1:{port}"),
            *("--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)),
            *("--workers", "2", "--threads", "4", "--rate-limit", "100000"),
        ]
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO, env=env)
        try:
            url = f"https://127.0.0.1:{port}"
            _wait_ready(url, str(tls.ca_file), process)
            yield Served(process, url, str(tls.ca_file), issuer, values, stderr_path, metrics_dir)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_a_valid_token_reads_its_secrets(served: Served) -> None:
    response = served.post(served.mint())
    assert response.status_code == 200, response.text
    assert [item["value"] for item in response.json()["secrets"]] == [
        served.values["password"],
        served.values["username"],
        served.values["service-a-token"],
    ]
    assert served.post("not-a-token").status_code == 401


def test_metrics_add_up_the_requests_of_both_workers(served: Served) -> None:
    def total() -> float:
        text = served.get("/metrics").text
        return metric_value(text, "esi_federation_requests_total", {"route": "secrets"})

    before = total()
    token = served.mint()
    # One connection per request, several at a time: both workers accept some of them.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: served.post(token, Connection="close").status_code, range(40)))
    assert statuses == [200] * 40
    # Each /metrics answer comes from either worker; every one must show all 40 requests.
    assert [total() - before for _ in range(6)] == [40.0] * 6
    assert len(list(served.metrics_dir.glob("counter_*.db"))) >= 2  # one file per worker process


def test_bodies_over_64_kib_are_refused_chunked_or_not(served: Served) -> None:
    padded = json.dumps({"secrets": THREE_SECRETS}).encode().ljust(64 * 1024 + 10)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {served.mint()}"}
    for data in (padded, (padded[i : i + 8192] for i in range(0, len(padded), 8192))):
        response = requests.post(
            served.url + "/v1/secrets", data=data, headers=headers, verify=served.ca_file, timeout=30
        )
        with served.counting:
            served.secrets_requests += 1
        assert response.status_code == 413


def test_throughput_of_three_secrets_with_rs256(served: Served) -> None:
    tokens = [served.mint() for _ in range(8)]

    def run(token: str) -> list[int]:
        with requests.Session() as session:
            return [served.post(token, session).status_code for _ in range(200)]

    with ThreadPoolExecutor(8) as pool:
        served.post(tokens[0])  # warm the JWKS cache of at least one worker
        started = time.perf_counter()
        statuses = [status for batch in pool.map(run, tokens) for status in batch]
        elapsed = time.perf_counter() - started
    assert statuses == [200] * 1600
    # Measured, never asserted: the number is kept next to the server's log, in pytest's temp directory.
    result = {"requests": 1600, "seconds": round(elapsed, 3), "per_s": round(1600 / elapsed, 1)}
    (served.stderr_path.parent / "throughput.json").write_text(json.dumps(result), encoding="utf-8")


def test_logs_are_json_lines_without_tokens_or_values_and_sigterm_stops_cleanly(served: Served) -> None:
    token = served.mint()
    request_id = "e2e-last-request"
    assert served.post(token, **{"X-Request-Id": request_id}).status_code == 200
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=10) == 0
    lines = [line for line in served.stderr().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON, or this raises
    assert all(isinstance(entry, dict) for entry in entries)
    text = "\n".join(lines)
    for value in served.values.values():
        assert value not in text
    for part in token.split("."):
        assert part not in text
    audits = [entry for entry in entries if entry.get("event") == "audit"]
    assert [a["request_id"] for a in audits].count(request_id) == 1
    assert len(audits) == served.secrets_requests  # every /v1/secrets request of this module, once each
