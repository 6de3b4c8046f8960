"""ServiceAccount tokens of a real kube-apiserver, verified by ``esi-federation serve`` through its JWKS."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.kube import ControlPlane
from hack.kube.client import create_object, ensure_service_account, request_token
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    authorization,
    fake_store,
    seed_values,
)
from tests.kube.helpers_plane import (
    BIN,
    ServedFederation,
    kubernetes_federation,
    serve_federation,
    stored_pod,
    write_manifests,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

POD = "prometheus-0"
SECRETS = [{"store": "vault-prod", "key": "api-keys", "property": "service-a-token"}]


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    return seed_values()


@pytest.fixture(scope="module")
def served(
    kube_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, values: dict[str, str]
) -> Iterator[ServedFederation]:
    """The walkthrough's federation server, with the real API server as client-cluster-alpha."""
    ensure_service_account(kube_plane, NAMESPACE, SERVICE_ACCOUNT)
    create_object(kube_plane, stored_pod(NAMESPACE, POD, SERVICE_ACCOUNT))
    directory = tmp_path_factory.mktemp("tokens")
    manifests = write_manifests(
        directory / "manifests",
        [
            fake_store("vault-prod", {"api-keys": {"service-a-token": values["service-a-token"]}}),
            kubernetes_federation(kube_plane, CLUSTER, [AUDIENCE]),
            authorization("allow-alpha-monitoring", issuer=kube_plane.issuer),
        ],
    )
    with serve_federation(directory, ["--manifests", str(manifests)]) as server:
        yield server


def test_a_pod_bound_token_of_the_api_server_fetches_a_secret_with_esi_cli(
    kube_plane: ControlPlane, served: ServedFederation, values: dict[str, str], tmp_path: Path
) -> None:
    token = request_token(kube_plane, NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE], 600, pod=POD)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    secrets_dir = tmp_path / "secrets"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESI_")},
        "ESI_SERVER": served.url,
        "ESI_SERVER_CA": served.ca_file.read_text(),
        "ESI_TOKEN_FILE": str(token_file),
        "ESI_CA_FILE": str(kube_plane.ca_file),
        "ESI_CLUSTER": CLUSTER,
        "ESI_STORE": "vault-prod",
        "ESI_FILES": "service-a.token=api-keys.service-a-token",
        "ESI_DIR": str(secrets_dir),
        "ESI_TIMEOUT": "20s",
    }

    run = subprocess.run(
        [str(BIN / "esi-cli"), "fetch"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert run.returncode == 0, run.stderr
    written = secrets_dir / "service-a.token"
    assert written.read_text() == values["service-a-token"]
    assert token not in run.stdout + run.stderr


def test_a_token_for_the_api_servers_default_audience_is_refused(
    kube_plane: ControlPlane, served: ServedFederation
) -> None:
    token = request_token(kube_plane, NAMESPACE, SERVICE_ACCOUNT, None)

    response = served.post_secrets(token, SECRETS)

    assert response.status_code == 401
    assert token not in served.stderr()


def test_a_token_of_another_service_account_is_forbidden(
    kube_plane: ControlPlane, served: ServedFederation
) -> None:
    other = "not-granted-" + secrets.token_hex(3)
    ensure_service_account(kube_plane, NAMESPACE, other)
    token = request_token(kube_plane, NAMESPACE, other, [AUDIENCE])

    assert served.post_secrets(token, SECRETS).status_code == 403
