"""Rotating the API server's ServiceAccount signing key, as a cluster operator does it.

A control plane of its own (``own_kube_plane``: its API server is restarted twice). The federation
server runs in this process with a 2 s JWKS refresh interval, so that "after the next refresh" is
seconds, not minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from federation.app import create_app, stop_app
from federation.settings import Settings
from hack.kube import ControlPlane
from hack.kube.client import ensure_service_account, request_token
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    STORE,
    authorization,
    fake_store,
    seed_values,
    serve_over_tls,
)
from tests.kube.helpers_plane import kubernetes_federation, write_manifests

pytestmark = [pytest.mark.kube, pytest.mark.slow]

REFRESH = 2.0
SECRETS = [{"store": STORE, "key": "api-keys", "property": "service-a-token"}]


@pytest.fixture(scope="module")
def rotating_plane(own_kube_plane: ControlPlane) -> ControlPlane:
    ensure_service_account(own_kube_plane, NAMESPACE, SERVICE_ACCOUNT)
    return own_kube_plane


@pytest.fixture(scope="module")
def federation_url(
    rotating_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("rotation")
    values = seed_values()
    manifests = write_manifests(
        directory / "manifests",
        [
            fake_store(STORE, {"api-keys": {"service-a-token": values["service-a-token"]}}),
            kubernetes_federation(rotating_plane, CLUSTER, [AUDIENCE]),
            authorization("allow-alpha-monitoring", issuer=rotating_plane.issuer),
        ],
    )
    settings = Settings(
        manifests_dir=manifests,
        jwks_refresh_interval=REFRESH,
        jwks_unknown_kid_interval=0.5,
        rate_limit=1000.0,
        workers=1,
    )
    app = create_app(settings)
    server, ca_file = serve_over_tls(app, directory / "tls")
    try:
        yield f"https://127.0.0.1:{server.server_port}", ca_file
    finally:
        server.shutdown()
        server.server_close()
        stop_app(app)


def status(federation: tuple[str, Path], token: str) -> int:
    url, ca_file = federation
    return requests.post(
        url + "/v1/secrets",
        json={"secrets": SECRETS},
        headers={"Authorization": f"Bearer {token}"},
        verify=str(ca_file),
        timeout=30,
    ).status_code


def token(plane: ControlPlane) -> str:
    return request_token(plane, NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])


def test_rotation_keeps_old_and_new_tokens_working_until_the_old_key_is_dropped(
    rotating_plane: ControlPlane, federation_url: tuple[str, Path]
) -> None:
    old = token(rotating_plane)
    assert status(federation_url, old) == 200

    rotating_plane.rotate_signing_key()  # restarted: signs with a new key, still lists the old one
    new = token(rotating_plane)
    assert new.split(".")[0] != old.split(".")[0]  # another kid in the header
    assert [status(federation_url, new), status(federation_url, old)] == [200, 200]

    rotating_plane.retire_old_keys()  # restarted: lists only the new key
    time.sleep(REFRESH + 0.5)  # the next refresh of the key set is due
    assert [status(federation_url, new), status(federation_url, old)] == [200, 401]
