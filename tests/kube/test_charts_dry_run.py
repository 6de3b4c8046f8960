"""Every object both charts render, for each TLS mode, goes through the real API server's validation.

A server-side dry run (``dryRun=All``, ``fieldValidation=Strict``, as ``kubectl apply --dry-run=server``
sends it): defaulting, validation and admission run, nothing is stored. The kinds of other projects'
CRDs (cert-manager, prometheus-operator) are left out: their schemas are not ours to install.
"""

from __future__ import annotations

from typing import Any

import pytest

from hack.certs import create_ca
from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, create_object, ensure_service_account
from tests.charts.helpers_rendering import (
    FOREIGN_KINDS,
    RELEASE_NAMESPACE,
    SERVER_CHART,
    SERVER_VARIANTS,
    WEBHOOK_CHART,
    render,
    webhook_variants,
)
from tests.kube.helpers_plane import dropped_fields

pytestmark = [pytest.mark.kube, pytest.mark.slow]

# Chart.yaml's kubeVersion of both charts (">=1.25.0-0"): helm refuses to install them on older servers.
CHART_MIN_MINOR = 25
CA_PEM = create_ca("charts dry run CA").cert_pem.decode()
CASES = [("esi-federation-server", name, values) for name, values in SERVER_VARIANTS.items()] + [
    ("esi-webhook", name, values) for name, values in webhook_variants(CA_PEM).items()
]


@pytest.mark.parametrize(("chart", "variant", "values"), CASES, ids=[f"{c}-{v}" for c, v, _ in CASES])
def test_every_rendered_object_is_accepted_by_a_server_side_dry_run(
    kube_plane: ControlPlane, chart: str, variant: str, values: dict[str, Any]
) -> None:
    if kube_plane.minor < CHART_MIN_MINOR:
        pytest.skip(
            f"both charts need Kubernetes >= 1.{CHART_MIN_MINOR} (kubeVersion); this is {kube_plane.version}"
        )
    objects = render(SERVER_CHART if chart == "esi-federation-server" else WEBHOOK_CHART, values)
    ours = [obj for obj in objects if (obj["apiVersion"], obj["kind"]) not in FOREIGN_KINDS]
    assert ours
    # What a cluster has before any install: the namespaces, each with the `default` ServiceAccount that
    # the controller-manager (not running here) would have made.
    for namespace in {RELEASE_NAMESPACE} | {
        obj["metadata"].get("namespace") or RELEASE_NAMESPACE for obj in ours
    }:
        ensure_service_account(kube_plane, namespace, "default")

    refused: dict[str, str] = {}
    changed: dict[str, list[str]] = {}

    def dry_run(obj: dict[str, Any]) -> None:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            stored = create_object(kube_plane, obj, dry_run=True)
        except KubeError as exc:
            refused[where] = exc.message
            return
        dropped = dropped_fields(obj, stored)
        if dropped:
            changed[where] = dropped

    for obj in ours:
        if obj["kind"] != "Pod":
            dry_run(obj)
    # An install creates the release's ServiceAccounts before the pods that run as them (the `helm test`
    # pod runs as the release's own): create them for real for the pods' dry run, and remove them again.
    accounts = [obj for obj in ours if obj["kind"] == "ServiceAccount"]
    client = api_client(kube_plane)
    for account in accounts:
        client.create(account)
    try:
        for obj in ours:
            if obj["kind"] == "Pod":
                dry_run(obj)
    finally:
        for account in accounts:
            client.delete(account)

    assert refused == {}
    assert changed == {}
