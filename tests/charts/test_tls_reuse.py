"""The Helm-generated CA is made once: an upgrade reads the existing Secret back through ``lookup``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from hack.certs import create_ca
from tests.charts.helpers_fake_apiserver import FakeApiServer, fake_apiserver
from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    SERVER_CHART,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    loaded,
    one,
)

# (chart, values, name of the TLS Secret for release "esi")
CHARTS = [
    (WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES, "esi-esi-webhook-tls"),
    (SERVER_CHART, {}, "esi-esi-federation-server-tls"),
]
CHART_IDS = ["webhook", "server"]


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with fake_apiserver() as server:
        yield server


def existing_tls() -> dict[str, str]:
    """A CA and certificate made at run time, as a Secret's base64 data."""
    ca = create_ca("installed-before")
    leaf = ca.issue(["esi-esi-webhook.esi-system.svc"])
    pems = {"ca.crt": ca.cert_pem, "tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}
    return {key: base64.b64encode(pem).decode() for key, pem in pems.items()}


def upgrade_render(server: FakeApiServer, chart_dir: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render as ``helm upgrade`` does, with ``lookup`` answered by ``server``."""
    config = helm_python.Config(kube_apiserver=server.url, kube_token="test", namespace=RELEASE_NAMESPACE)
    try:
        with loaded(chart_dir) as chart:
            files = config.render(
                chart, values, name="esi", namespace=RELEASE_NAMESPACE, is_upgrade=True, revision=2
            )
    finally:
        config.close()
    return [
        doc
        for path, text in files.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.mark.parametrize(("chart_dir", "values", "secret_name"), CHARTS, ids=CHART_IDS)
def test_an_upgrade_keeps_the_existing_ca_and_certificate(
    apiserver: FakeApiServer, chart_dir: Path, values: dict[str, Any], secret_name: str
) -> None:
    data = existing_tls()
    apiserver.add_secret(RELEASE_NAMESPACE, secret_name, data)
    objects = upgrade_render(apiserver, chart_dir, values)
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == secret_name
    assert secret["data"] == data
    assert f"/api/v1/namespaces/{RELEASE_NAMESPACE}/secrets/{secret_name}" in apiserver.paths


def test_an_upgrade_keeps_the_webhooks_ca_bundle(apiserver: FakeApiServer) -> None:
    data = existing_tls()
    apiserver.add_secret(RELEASE_NAMESPACE, "esi-esi-webhook-tls", data)
    objects = upgrade_render(apiserver, WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES)
    (webhook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["clientConfig"]["caBundle"] == data["ca.crt"]


@pytest.mark.parametrize(("chart_dir", "values", "secret_name"), CHARTS, ids=CHART_IDS)
def test_an_incomplete_secret_is_replaced_by_fresh_material(
    apiserver: FakeApiServer, chart_dir: Path, values: dict[str, Any], secret_name: str
) -> None:
    data = existing_tls()
    del data["ca.crt"]
    apiserver.add_secret(RELEASE_NAMESPACE, secret_name, data)
    secret = one(upgrade_render(apiserver, chart_dir, values), "Secret")
    assert secret["data"]["tls.crt"] != data["tls.crt"]
    assert base64.b64decode(secret["data"]["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_first_install_generates_a_new_ca(apiserver: FakeApiServer) -> None:
    objects = upgrade_render(apiserver, WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES)
    secret = one(objects, "Secret")
    (webhook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert base64.b64decode(secret["data"]["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
