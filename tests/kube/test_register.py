"""``esi-federation register`` against the real API server: its output verifies the cluster's real tokens."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from federation.app import create_app, stop_app
from federation.main import main
from federation.settings import Settings
from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, ensure_service_account, request_token
from tests.helpers_stack import fake_store, serve_over_tls

pytestmark = [pytest.mark.kube, pytest.mark.slow]

AUDIENCE = "esi-federation"
STORE = "vault-prod"
DISCOVERY_BINDING = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


def run_register(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, the documents printed, and stderr."""
    code = main(["register", *args])
    captured = capsys.readouterr()
    return code, [doc for doc in yaml.safe_load_all(captured.out) if doc], captured.err


def test_the_printed_federation_verifies_a_token_of_the_real_api_server(
    kube_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"register-{secrets.token_hex(3)}"
    ensure_service_account(kube_plane, namespace, "app")
    subject = f"system:serviceaccount:{namespace}:app"
    code, documents, err = run_register(
        capsys, "--kubeconfig", str(kube_plane.kubeconfig), "--name", "kube-plane",
        "--audience", AUDIENCE, "--subject", subject, "--store", STORE,
    )  # fmt: skip
    assert code == 0, err
    federation, grant = documents
    assert federation["spec"]["url"] == kube_plane.url
    assert federation["spec"]["issuer"] == kube_plane.issuer
    assert federation["spec"]["caBundle"].strip() == kube_plane.ca_pem.strip()
    assert grant["spec"]["subject"]["oidc"]["subject"] == subject

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    store = fake_store(STORE, {"db-credentials": {"password": secrets.token_hex(8)}})
    (manifests / "all.yaml").write_text(yaml.safe_dump_all([*documents, store]), encoding="utf-8")
    app = create_app(Settings(manifests_dir=manifests, rate_limit=100.0, workers=1))
    server, server_ca = serve_over_tls(app, tmp_path / "tls")
    try:
        answer = requests.post(
            f"https://127.0.0.1:{server.server_port}/v1/secrets",
            json={"secrets": [{"store": STORE, "key": "db-credentials", "property": "password"}]},
            headers={"Authorization": f"Bearer {request_token(kube_plane, namespace, 'app', [AUDIENCE])}"},
            verify=str(server_ca),
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
        stop_app(app)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def without_anonymous_discovery(kube_plane: ControlPlane) -> Iterator[None]:
    """The plane's binding of the discovery role to anonymous users, removed for one test."""
    client = api_client(kube_plane)
    bindings = client.get(DISCOVERY_BINDING)["items"]
    removed = [
        binding
        for binding in bindings
        if binding["roleRef"]["name"] == "system:service-account-issuer-discovery"
        and any(subject.get("name") == "system:unauthenticated" for subject in binding.get("subjects", []))
    ]
    assert removed, "the plane serves discovery anonymously; this test needs that binding to remove it"
    for binding in removed:
        client.request("DELETE", f"{DISCOVERY_BINDING}/{binding['metadata']['name']}")
    try:
        yield
    finally:
        for binding in removed:
            restored = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding["metadata"]["name"]},
                "roleRef": binding["roleRef"],
                "subjects": binding["subjects"],
            }
            try:
                client.request("POST", DISCOVERY_BINDING, restored)
            except KubeError as exc:
                if exc.status != 409:
                    raise
        assert _anonymous_jwks_status(kube_plane, deadline=time.monotonic() + 15) == 200


def _anonymous_jwks_status(plane: ControlPlane, deadline: float) -> int:
    """The status of an anonymous JWKS fetch, waiting until 200 or ``deadline``."""
    while True:
        status = requests.get(
            plane.url + "/openid/v1/jwks",
            headers={"Accept": "application/jwk-set+json"},
            verify=str(plane.ca_file),
            timeout=10,
        ).status_code
        if status == 200 or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_a_cluster_without_anonymous_discovery_is_told_which_binding_to_add(
    kube_plane: ControlPlane, without_anonymous_discovery: None, capsys: pytest.CaptureFixture[str]
) -> None:
    deadline = time.monotonic() + 15
    while True:  # the authorizer sees the deleted binding within moments, not at once
        code, documents, err = run_register(
            capsys, "--kubeconfig", str(kube_plane.kubeconfig), "--name", "kube-plane"
        )
        if code != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (code, documents) == (1, [])
    assert "answered 403" in err
    assert "--clusterrole=system:service-account-issuer-discovery --group=system:unauthenticated" in err
