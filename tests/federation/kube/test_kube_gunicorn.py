"""``esi-federation serve --kubernetes`` under real gunicorn: every worker watches, one writes status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from hack.certs import create_ca, write_tls_files
from hack.client_issuer import ClientClusterIssuer
from hack.ports import free_port
from tests.federation.kube.helpers_kube import (
    AUTHORIZATIONS,
    FEDERATIONS,
    LEASE_NAMESPACE,
    EmulatedCluster,
    lease_holder,
    ready_condition,
    seed,
    status_of,
    wait_until,
)
from tests.helpers_stack import AUDIENCE, CLUSTER, NAMESPACE, SERVICE_ACCOUNT, STORE, seed_values

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
WORKERS = 2


@dataclass
class Served:
    """A running ``esi-federation serve --kubernetes`` and its API server."""

    url: str
    ca_file: str
    cluster: EmulatedCluster
    issuer: ClientClusterIssuer

    def fetch(self, token: str) -> int:
        """POST /v1/secrets on a fresh connection (so that the requests spread over the workers)."""
        body = {"secrets": [{"store": STORE, "key": "db-credentials", "property": "password"}]}
        with requests.Session() as session:
            answer = session.post(
                self.url + "/v1/secrets",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                verify=self.ca_file,
                timeout=10,
            )
        return answer.status_code


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with EmulatedCluster() as cluster, ClientClusterIssuer() as issuer:
        cluster.serve_stores("v1")
        seed(cluster, issuer, seed_values())
        ca = create_ca("federation server kube e2e CA")
        tls = write_tls_files(tmp_path / "tls", ca, ca.issue(["127.0.0.1"]))
        port = free_port()
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir()
        command = [
            *(str(Path(sys.executable).parent / "esi-federation"), "serve", "--kubernetes"),
            *("--kubeconfig", str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))),
            *("--lease-namespace", LEASE_NAMESPACE, "--bind", f"127.0.0.1:{port}"),
            *("--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)),
            *("--workers", str(WORKERS), "--threads", "4", "--rate-limit", "100000"),
        ]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        with (tmp_path / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO, env=env)
        try:
            url = f"https://127.0.0.1:{port}"
            wait_until(lambda: _ready(url, str(tls.ca_file), process), timeout=60, interval=0.2)
            # Each worker must follow the Authorizations before the test changes them (see kube_stack).
            wait_until(lambda: cluster.watching(AUTHORIZATIONS) == WORKERS, timeout=20)
            yield Served(url, str(tls.ca_file), cluster, issuer)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _ready(url: str, ca_file: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, f"esi-federation serve exited with {process.returncode}"
    try:
        return requests.get(url + "/readyz", verify=ca_file, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_every_gunicorn_worker_refuses_within_5_seconds_after_the_authorization_is_deleted(
    served: Served,
) -> None:
    token = served.issuer.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])
    assert [served.fetch(token) for _ in range(4)] == [200] * 4
    started = time.monotonic()
    served.cluster.delete(AUTHORIZATIONS + "/allow-alpha-monitoring")
    wait_until(lambda: [served.fetch(token) for _ in range(8)] == [403] * 8, timeout=5)
    assert time.monotonic() - started < 5


def test_one_worker_holds_the_lease_and_writes_status(served: Served) -> None:
    path = FEDERATIONS + "/" + CLUSTER

    def federation_ready() -> bool:
        condition = ready_condition(status_of(served.cluster, path))
        return condition is not None and condition["status"] == "True"

    wait_until(federation_ready, timeout=20)
    holder = lease_holder(served.cluster)
    assert holder is not None
    time.sleep(2.5)  # several renewals later, the same worker holds it
    assert lease_holder(served.cluster) == holder
