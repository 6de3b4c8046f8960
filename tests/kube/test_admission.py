"""The webhook chart's MutatingWebhookConfiguration on the real API server, calling ``esi-webhook serve``.

The configuration is the chart's rendering with one change: ``clientConfig`` names the webhook by URL
on 127.0.0.1 (no Service can route to a process here) and trusts the test's CA. Everything else (rules,
namespaceSelector, failurePolicy, timeouts, admissionReviewVersions) is what a user installs.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from hack.certs import create_ca, write_tls_files
from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, ensure_namespace, ensure_service_account
from hack.ports import free_port
from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    merge,
    one,
    render,
)
from tests.kube.helpers_plane import BIN, REPO, dropped_fields

pytestmark = [pytest.mark.kube, pytest.mark.slow]

SEED_POD = REPO / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
SERVER_CA_PEM = create_ca("federation server CA").cert_pem.decode()
LOCAL_FILE_FLAGS = ("--tls-cert", "--tls-key", "--server-ca-file", "--bind")


@dataclass
class Webhook:
    """``esi-webhook serve`` started with the chart's args, plus what the tests compare it with."""

    process: subprocess.Popen[bytes] | None
    serve_args: list[str]
    config_args: list[str]  # the configuration flags alone: what `esi-webhook mutate` takes too
    url: str
    ca_file: Path
    log: Path
    env: dict[str, str]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "esi-webhook"), *self.serve_args], stdout=log, stderr=log, env=self.env
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if requests.get(self.url + "/readyz", verify=str(self.ca_file), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail("esi-webhook serve did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def reviews(self) -> int:
        """AdmissionReviews the webhook answered so far (from its own metrics)."""
        text = requests.get(self.url + "/metrics", verify=str(self.ca_file), timeout=5).text
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("esi_webhook_reviews_total{")
            )
        )

    def mutate_offline(self, pod: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
        manifest = tmp_path / f"{pod['metadata']['name']}.json"
        manifest.write_text(json.dumps(pod), encoding="utf-8")
        run = subprocess.run(
            [str(BIN / "esi-webhook"), "mutate", "-f", str(manifest), "-o", "json", *self.config_args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        return dict(json.loads(run.stdout))


def chart_args(objects: list[dict[str, Any]]) -> list[str]:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


SERVE_ONLY = ("--tls-cert", "--tls-key", "--bind", "--workers", "--threads")


def split_args(args: list[str], local: dict[str, str]) -> tuple[list[str], list[str]]:
    """(serve args, configuration args for mutate) from the chart's container args, ``local`` swapped in.

    ``local`` replaces paths and the listener, and one worker answers every review, so that the
    review counter read from /metrics is the whole count.
    """
    assert args[0] == "serve", args
    serve, config = ["serve"], []
    rest = args[1:]
    while rest:
        flag, value = rest.pop(0), rest.pop(0)
        serve += [flag, local.get(flag, value)]
        if flag not in SERVE_ONLY:
            config += [flag, local.get(flag, value)]
    return serve, config


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    directory = tmp_path_factory.mktemp("webhook")
    objects = render(
        WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"federation": {"serverCA": SERVER_CA_PEM}})
    )
    ca = create_ca("webhook test CA")
    tls = write_tls_files(directory / "tls", ca, ca.issue(["127.0.0.1"]))
    (directory / "server-ca.crt").write_text(SERVER_CA_PEM)
    port = free_port()
    files = {
        "--tls-cert": str(tls.cert_file),
        "--tls-key": str(tls.key_file),
        "--server-ca-file": str(directory / "server-ca.crt"),
        "--bind": f"127.0.0.1:{port}",
        "--workers": "1",
    }
    serve_args, config_args = split_args(chart_args(objects), files)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESI_")},
        "POD_NAMESPACE": RELEASE_NAMESPACE,
    }
    hook = Webhook(
        None, serve_args, config_args, f"https://127.0.0.1:{port}", tls.ca_file, directory / "log", env
    )
    hook.start()
    try:
        yield hook
    finally:
        hook.stop()


def webhook_configuration(ca_file: Path, url: str, **webhook: Any) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration, pointed at ``url`` by URL and trusting ``ca_file``."""
    objects = render(WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"webhook": webhook} if webhook else {}))
    configuration = copy.deepcopy(one(objects, "MutatingWebhookConfiguration"))
    (hook,) = configuration["webhooks"]
    path = hook["clientConfig"]["service"]["path"]
    hook["clientConfig"] = {"url": url + path, "caBundle": _b64(ca_file.read_bytes())}
    return configuration


def _b64(data: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.b64encode(data).decode()


@pytest.fixture
def registered(kube_plane: ControlPlane, webhook: Webhook) -> Iterator[dict[str, Any]]:
    """The configuration created on the API server for one test, deleted afterwards."""
    configuration = webhook_configuration(webhook.ca_file, webhook.url)
    client = api_client(kube_plane)
    client.create(configuration)
    try:
        yield configuration
    finally:
        client.delete(configuration)


def seed_pod(namespace: str, name: str | None = None) -> dict[str, Any]:
    pod = yaml.safe_load(SEED_POD.read_text(encoding="utf-8"))
    pod["metadata"]["namespace"] = namespace
    pod["metadata"]["name"] = name or f"prometheus-{secrets.token_hex(3)}"
    return dict(pod)


def fresh_namespace(plane: ControlPlane, prefix: str) -> str:
    """A new namespace with the seed's ServiceAccount (namespaces are never deleted: no controllers)."""
    namespace = f"{prefix}-{secrets.token_hex(3)}"
    ensure_service_account(plane, namespace, "prometheus-esi-client")
    return namespace


def create_pod(plane: ControlPlane, pod: dict[str, Any]) -> dict[str, Any]:
    return api_client(plane).create(pod)


def test_the_seed_pod_is_stored_as_esi_webhook_mutate_prints_it(
    kube_plane: ControlPlane, webhook: Webhook, registered: dict[str, Any], tmp_path: Path
) -> None:
    pod = seed_pod(fresh_namespace(kube_plane, "monitoring"))
    expected = webhook.mutate_offline(pod, tmp_path)
    before = webhook.reviews()

    stored = create_pod(kube_plane, pod)

    assert webhook.reviews() == before + 1
    # Everything the webhook put in the pod is stored as it was sent: the API server dropped nothing.
    assert dropped_fields(expected["spec"], stored["spec"]) == []
    assert (
        dropped_fields(expected["metadata"].get("annotations", {}), stored["metadata"]["annotations"]) == []
    )
    assert [c["name"] for c in stored["spec"]["initContainers"]] == [
        c["name"] for c in expected["spec"]["initContainers"]
    ]
    assert len(stored["spec"]["initContainers"]) > len(pod["spec"].get("initContainers", []))


def test_a_refused_pod_returns_the_webhooks_message_to_the_api_client(
    kube_plane: ControlPlane, webhook: Webhook, registered: dict[str, Any]
) -> None:
    pod = seed_pod(fresh_namespace(kube_plane, "monitoring"))
    del pod["spec"]["containers"][0]["command"]  # env mode needs the command to wrap

    with pytest.raises(KubeError) as refused:
        create_pod(kube_plane, pod)

    message = refused.value.message
    assert 'admission webhook "inject.esi.external-secrets.io" denied the request' in message
    assert "command" in message
    with pytest.raises(KubeError) as missing:
        api_client(kube_plane).get(
            f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
        )
    assert missing.value.status == 404


def test_a_server_outside_the_allow_list_is_refused_with_the_webhooks_message(
    kube_plane: ControlPlane, webhook: Webhook, registered: dict[str, Any]
) -> None:
    pod = seed_pod(fresh_namespace(kube_plane, "monitoring"))
    pod["metadata"]["annotations"]["esi.external-secrets.io/server"] = "https://attacker.example.com"

    with pytest.raises(KubeError) as refused:
        create_pod(kube_plane, pod)

    assert "denied the request" in refused.value.message
    assert "attacker.example.com" in refused.value.message or "allow" in refused.value.message


def test_pods_in_excluded_namespaces_are_never_sent_to_the_webhook(
    kube_plane: ControlPlane, webhook: Webhook, registered: dict[str, Any]
) -> None:
    if kube_plane.minor < 21:
        pytest.skip("namespaces carry the kubernetes.io/metadata.name label the chart selects on since 1.21")
    ensure_namespace(kube_plane, RELEASE_NAMESPACE)
    ensure_service_account(kube_plane, RELEASE_NAMESPACE, "prometheus-esi-client")
    ensure_service_account(kube_plane, "kube-system", "prometheus-esi-client")
    before = webhook.reviews()

    stored = [create_pod(kube_plane, seed_pod(namespace)) for namespace in (RELEASE_NAMESPACE, "kube-system")]

    assert webhook.reviews() == before
    assert [pod["spec"].get("initContainers") for pod in stored] == [None, None]


def test_with_the_webhook_down_failure_policy_fail_refuses_and_ignore_admits_unmutated(
    kube_plane: ControlPlane, webhook: Webhook
) -> None:
    client = api_client(kube_plane)
    namespace = fresh_namespace(kube_plane, "monitoring")
    webhook.stop()
    try:
        for policy in ("Fail", "Ignore"):
            configuration = webhook_configuration(webhook.ca_file, webhook.url, failurePolicy=policy)
            client.create(configuration)
            try:
                if policy == "Fail":
                    with pytest.raises(KubeError) as refused:
                        create_pod(kube_plane, seed_pod(namespace))
                    assert 'failed calling webhook "inject.esi.external-secrets.io"' in refused.value.message
                else:
                    stored = create_pod(kube_plane, seed_pod(namespace))
                    assert stored["spec"].get("initContainers") is None
            finally:
                client.delete(configuration)
    finally:
        webhook.start()
