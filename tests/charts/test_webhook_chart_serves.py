"""The webhook chart's Deployment, run for real: its args and its generated TLS Secret serve /mutate.

The rendered container args are started as they are, with three changes. The file paths point into
tmp_path, and the listener is a socket on 127.0.0.1 that the test binds itself. The client checks the
server's certificate against the chart's CA, under the Service's DNS name, as the API server does.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.admission import pod_create_review
from hack.certs import create_ca
from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    REPO_ROOT,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    merge,
    one,
    render,
)

pytestmark = pytest.mark.slow

PROMETHEUS_POD = REPO_ROOT / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
SERVER_CA_PEM = create_ca("federation-server-ca").cert_pem.decode()


class ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port, verifying the certificate for the Service's DNS name (``host``)."""

    def __init__(self, service_host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(service_host, port, timeout=5, context=context)
        self.tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.host)


class ChartWebhook:
    """The webhook started from the chart's rendering, and how to reach it."""

    def __init__(self, port: int, service_host: str, ca_pem: bytes) -> None:
        self.port = port
        self.service_host = service_host
        self.context = ssl.create_default_context(cadata=ca_pem.decode())

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """One request over TLS; (status, body)."""
        connection = ServiceConnection(self.service_host, self.port, self.context)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Poll /readyz (the readiness probe's path) until it answers 200: gunicorn forks workers first."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, "esi-webhook serve exited"
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail("the webhook never became ready")


def local_args(args: list[str], files: dict[str, Path], fd: int) -> list[str]:
    """The container's args with file paths in tmp_path and the test's listening socket."""
    replaced = {
        "--tls-cert": str(files["tls.crt"]),
        "--tls-key": str(files["tls.key"]),
        "--server-ca-file": str(files["server-ca.crt"]),
        "--bind": f"fd://{fd}",
    }
    result = [args[0]]
    rest = args[1:]
    while rest:
        flag, value = rest.pop(0), rest.pop(0)
        result += [flag, replaced.get(flag, value)]
    return result


@pytest.fixture
def chart_webhook(tmp_path: Path) -> Iterator[ChartWebhook]:
    objects = render(
        WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"federation": {"serverCA": SERVER_CA_PEM}})
    )
    secret = one(objects, "Secret")["data"]
    files = {name: tmp_path / name for name in ("tls.crt", "tls.key", "server-ca.crt")}
    files["tls.crt"].write_bytes(base64.b64decode(secret["tls.crt"]))
    files["tls.key"].write_bytes(base64.b64decode(secret["tls.key"]))
    files["tls.key"].chmod(0o600)
    files["server-ca.crt"].write_text(SERVER_CA_PEM)
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    service = one(objects, "Service")["metadata"]["name"]
    with socket.socket() as listener, (tmp_path / "webhook.log").open("wb") as log:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        esi_webhook = str(Path(sys.executable).parent / "esi-webhook")
        process = subprocess.Popen(
            [esi_webhook, *local_args(container["args"], files, listener.fileno())],
            pass_fds=[listener.fileno()],
            stderr=log,
        )
        webhook = ChartWebhook(
            listener.getsockname()[1],
            f"{service}.{RELEASE_NAMESPACE}.svc",
            base64.b64decode(secret["ca.crt"]),
        )
    try:
        webhook.wait_until_ready(process)
        yield webhook
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_probe_paths_answer_over_the_charts_tls(chart_webhook: ChartWebhook) -> None:
    assert chart_webhook.request("GET", "/healthz")[0] == 200
    assert chart_webhook.request("GET", "/readyz")[0] == 200


def test_mutate_injects_esi_init_into_the_seed_pod(chart_webhook: ChartWebhook) -> None:
    pod = yaml.safe_load(PROMETHEUS_POD.read_text())
    review = pod_create_review(pod, namespace="monitoring")
    status, body = chart_webhook.request("POST", "/mutate", review)
    assert status == 200
    response = json.loads(body)["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    assert "esi-init" in json.dumps(patch)


def test_pods_of_the_release_namespace_pass_untouched(chart_webhook: ChartWebhook) -> None:
    pod = yaml.safe_load(PROMETHEUS_POD.read_text())
    pod["metadata"]["namespace"] = RELEASE_NAMESPACE
    review = pod_create_review(pod, namespace=RELEASE_NAMESPACE)
    status, body = chart_webhook.request("POST", "/mutate", review)
    assert status == 200
    response = json.loads(body)["response"]
    assert response["allowed"] is True
    assert "patch" not in response
