"""Which pods the chart's webhook configuration sends to the webhook, proven on the real API server.

The webhook is down for all of these tests: the configuration points at a port on 127.0.0.1 where
nothing listens. A pod that the API server sends to the webhook is then refused (failurePolicy Fail);
a pod it does not send is created. The chart is rendered for the plane's own Kubernetes version, as
``helm install`` would render it there.
"""

from __future__ import annotations

import base64
import copy
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hack.certs import create_ca
from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, ensure_service_account
from hack.ports import free_port
from tests.charts.helpers_rendering import (
    REPO_ROOT,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    merge,
    one,
    render,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

SEED_POD = REPO_ROOT / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
SERVICE_ACCOUNT = "prometheus-esi-client"
INJECT_LABEL = {"esi.external-secrets.io/inject": "true"}
CALL_FAILED = 'failed calling webhook "inject.esi.external-secrets.io"'


def configuration(plane: ControlPlane, pod_selection: str) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration for ``plane``'s version, calling a webhook that is down."""
    values = merge(WEBHOOK_REQUIRED_VALUES, {"webhook": {"podSelection": pod_selection}})
    rendered = one(render(WEBHOOK_CHART, values, kube_version=plane.version), "MutatingWebhookConfiguration")
    stopped = copy.deepcopy(rendered)
    stopped["metadata"]["name"] = f"esi-selection-{pod_selection.lower()}-{secrets.token_hex(3)}"
    (hook,) = stopped["webhooks"]
    ca = base64.b64encode(create_ca("nobody answers").cert_pem).decode()
    hook["clientConfig"] = {"url": f"https://127.0.0.1:{free_port()}/mutate", "caBundle": ca}
    return stopped


@pytest.fixture
def namespace(kube_plane: ControlPlane) -> str:
    """A fresh namespace with the seed's ServiceAccount (namespaces are never deleted here)."""
    name = f"selection-{secrets.token_hex(3)}"
    ensure_service_account(kube_plane, name, SERVICE_ACCOUNT)
    return name


@pytest.fixture
def active(kube_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The configuration of the mode ``request.param``, created for one test and deleted afterwards."""
    created = configuration(kube_plane, request.param)
    client = api_client(kube_plane)
    client.create(created)
    try:
        yield created
    finally:
        client.delete(created)


def seed_pod(namespace: str, *, annotated: bool, labelled: bool = False) -> dict[str, Any]:
    """The walkthrough's Prometheus pod, with or without its annotations and the opt-in label."""
    pod: dict[str, Any] = yaml.safe_load(SEED_POD.read_text(encoding="utf-8"))
    metadata = pod["metadata"]
    metadata["namespace"] = namespace
    metadata["name"] = f"prometheus-{secrets.token_hex(3)}"
    if not annotated:
        metadata.pop("annotations", None)
    if labelled:
        metadata.setdefault("labels", {}).update(INJECT_LABEL)
    return pod


def refusal(plane: ControlPlane, pod: dict[str, Any]) -> str | None:
    """The API server's refusal of ``pod``, or None when it was created (and then stored unmutated)."""
    try:
        stored = api_client(plane).create(pod)
    except KubeError as exc:
        return exc.message
    assert stored["spec"].get("initContainers") is None
    return None


@pytest.mark.parametrize("active", ["all"], indirect=True)
def test_all_mode_blocks_every_pod_while_the_webhook_is_down(
    kube_plane: ControlPlane, namespace: str, active: dict[str, Any]
) -> None:
    # The control: the down webhook really is in the path, so the other tests' created pods mean
    # that the API server did not call it.
    assert CALL_FAILED in (refusal(kube_plane, seed_pod(namespace, annotated=False)) or "")
    assert CALL_FAILED in (refusal(kube_plane, seed_pod(namespace, annotated=True)) or "")


@pytest.mark.parametrize("active", ["objectSelector"], indirect=True)
def test_object_selector_mode_sends_only_labelled_pods(
    kube_plane: ControlPlane, namespace: str, active: dict[str, Any]
) -> None:
    assert refusal(kube_plane, seed_pod(namespace, annotated=False)) is None
    # The trade-off of this mode: annotations without the label are not injected, and not refused.
    assert refusal(kube_plane, seed_pod(namespace, annotated=True)) is None
    assert CALL_FAILED in (refusal(kube_plane, seed_pod(namespace, annotated=True, labelled=True)) or "")


@pytest.mark.parametrize("active", ["auto"], indirect=True)
def test_auto_mode_on_this_version(kube_plane: ControlPlane, namespace: str, active: dict[str, Any]) -> None:
    (hook,) = active["webhooks"]
    if kube_plane.minor >= 30:
        assert "matchConditions" in hook
        assert refusal(kube_plane, seed_pod(namespace, annotated=False)) is None
        annotated_but_off = seed_pod(namespace, annotated=True)
        annotated_but_off["metadata"]["annotations"]["esi.external-secrets.io/inject"] = "false"
        assert refusal(kube_plane, annotated_but_off) is None
    else:
        # Before 1.30 auto keeps the webhook in the path of every pod, as "all" does.
        assert "matchConditions" not in hook
        assert CALL_FAILED in (refusal(kube_plane, seed_pod(namespace, annotated=False)) or "")
    assert CALL_FAILED in (refusal(kube_plane, seed_pod(namespace, annotated=True)) or "")
