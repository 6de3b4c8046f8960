"""`helm test` hooks of both charts: what they render, and their check run against a real server over TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hack.certs import create_ca
from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    SERVER_CHART,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    merge,
    one,
    render,
)
from tests.helpers_stack import FederationStack

CHARTS = [(SERVER_CHART, {}), (WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES)]
CHART_IDS = ["server", "webhook"]


def hook_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The rendered `helm test` pod."""
    return one(objects, "Pod")


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    """The test container's environment."""
    (container,) = pod["spec"]["containers"]
    return {item["name"]: item["value"] for item in container.get("env", [])}


def run_check(
    pod: dict[str, Any], url: str, env: dict[str, str], *paths: str
) -> subprocess.CompletedProcess[str]:
    """The pod's command run here, with python3 being this interpreter and ``url`` as the Service."""
    (container,) = pod["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["python3", "-c"]
    script, rendered_paths = command[2], command[3:]
    environment = {**os.environ, **env_of(pod), **env, "ESI_TEST_URL": url}
    return subprocess.run(
        [sys.executable, "-c", script, *(paths or rendered_paths)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("chart", "values"), CHARTS, ids=CHART_IDS)
def test_the_hook_pod_checks_healthz_and_readyz_through_the_service(
    chart: Path, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    pod = hook_pod(objects)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["command"][3:] == ["/healthz", "/readyz"]
    service = one(objects, "Service")
    port = service["spec"]["ports"][0]["port"]
    assert (
        env_of(pod)["ESI_TEST_URL"] == f"https://{service['metadata']['name']}.{RELEASE_NAMESPACE}.svc:{port}"
    )
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(("chart", "values"), CHARTS, ids=CHART_IDS)
def test_the_hook_pod_is_no_endpoint_of_the_service_nor_counted_by_the_pdb(
    chart: Path, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    labels = hook_pod(objects)["metadata"]["labels"]
    assert not one(objects, "Service")["spec"]["selector"].items() <= labels.items()
    assert (
        not one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    )


@pytest.mark.parametrize(("chart", "values"), CHARTS, ids=CHART_IDS)
def test_the_hook_can_be_turned_off(chart: Path, values: dict[str, Any]) -> None:
    objects = render(chart, merge(values, {"helmTest": {"enabled": False}}))
    assert "Pod" not in {obj["kind"] for obj in objects}


@pytest.mark.parametrize(("chart", "values"), CHARTS, ids=CHART_IDS)
def test_the_check_passes_against_a_healthy_server_and_trusts_only_the_ca(
    chart: Path, values: dict[str, Any], federation_stack: FederationStack
) -> None:
    pod = hook_pod(render(chart, values))
    ca_file = {"ESI_TEST_CA_FILE": str(federation_stack.server_ca_file)}
    passed = run_check(pod, federation_stack.url, ca_file)
    assert passed.returncode == 0, passed.stderr[-2000:]
    assert passed.stdout.split("\n")[:2] == ["/healthz 200", "/readyz 200"]
    untrusted = run_check(pod, federation_stack.url, {"ESI_TEST_CA_FILE": "/nonexistent/ca.crt"})
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    missing = run_check(pod, federation_stack.url, ca_file, "/healthz", "/no-such-path")
    assert missing.returncode != 0
    assert "404" in missing.stderr


def test_the_webhook_check_trusts_the_ca_bundle_of_an_existing_secret(
    federation_stack: FederationStack,
) -> None:
    ca_pem = federation_stack.server_ca_file.read_text(encoding="ascii")
    values = merge(WEBHOOK_REQUIRED_VALUES, {"tls": {"existingSecret": "webhook-tls", "caBundle": ca_pem}})
    pod = hook_pod(render(WEBHOOK_CHART, values))
    assert env_of(pod)["ESI_TEST_CA"].strip() == ca_pem.strip()
    passed = run_check(pod, federation_stack.url, {})
    assert passed.returncode == 0, passed.stderr[-2000:]
    other = create_ca("another CA").cert_pem.decode()
    values_other = merge(
        WEBHOOK_REQUIRED_VALUES, {"tls": {"existingSecret": "webhook-tls", "caBundle": other}}
    )
    refused = run_check(hook_pod(render(WEBHOOK_CHART, values_other)), federation_stack.url, {})
    assert refused.returncode != 0
