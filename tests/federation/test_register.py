"""`esi-federation register` against the client-cluster stand-in: it prints what the server needs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.main import main
from hack.certs import create_ca
from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from tests.federation.helpers_requests import post_secrets, register
from tests.helpers_stack import CLUSTER, STORE, SUBJECT, FederationStack

KUBECONFIG_TOKEN = "kubeconfig-user-token-" + "x" * 16


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: str | None,
    *,
    token: str = KUBECONFIG_TOKEN,
    context: str = "alpha",
    ca_file: bool = False,
    insecure: bool = False,
) -> Path:
    """A kubeconfig with one context ``context`` whose user authenticates with ``token``."""
    cluster: dict[str, Any] = {"server": server}
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    elif ca_pem and ca_file:
        (path.parent / "client-ca.pem").write_text(ca_pem, encoding="ascii")
        cluster["certificate-authority"] = str(path.parent / "client-ca.pem")
    elif ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "alpha-cluster", "cluster": cluster}],
        "users": [{"name": "alpha-admin", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "alpha-cluster", "user": "alpha-admin"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def run_register(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, the documents printed on stdout, and stderr."""
    code = main(["register", *args])
    captured = capsys.readouterr()
    return code, [doc for doc in yaml.safe_load_all(captured.out) if doc], captured.err


@pytest.fixture
def issuer() -> Any:
    with ClientClusterIssuer() as cluster:
        yield cluster


def test_the_printed_manifests_let_the_server_verify_the_clusters_tokens(
    federation_stack: FederationStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = federation_stack.issuer
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, cluster.ca_pem)
    code, documents, err = run_register(
        capsys, "--kubeconfig", str(kubeconfig), "--name", CLUSTER, "--audience", "esi-federation",
        "--subject", SUBJECT, "--store", STORE, "--secret", "db-credentials",
    )  # fmt: skip
    assert code == 0, err
    assert [doc["kind"] for doc in documents] == ["KubernetesFederation", "Authorization"]
    federation, grant = documents
    assert federation["spec"] == {
        "url": cluster.url,
        "issuer": cluster.issuer,
        "caBundle": cluster.ca_pem.strip() + "\n",
        "audiences": ["esi-federation"],
    }
    assert grant["spec"]["subject"]["oidc"] == {"issuer": cluster.issuer, "subject": SUBJECT}
    assert grant["spec"]["allowedSecrets"] == ["db-credentials"]
    assert f"issuer {cluster.issuer}" in err

    # The federation is the very document the stack registered the stand-in with; the seed's
    # Authorization is replaced by the printed one, which alone must let the token in.
    seed = yaml.safe_load((federation_stack.manifests_dir / "client-cluster-alpha.yaml").read_text())
    assert federation == seed
    register(federation_stack, "allow-alpha-monitoring.yaml", grant)
    response = post_secrets(federation_stack, federation_stack.mint())
    assert response.status_code == 200, response.text
    refused = post_secrets(
        federation_stack, federation_stack.mint(), secrets=[{"store": STORE, "key": "api-keys"}]
    )
    assert refused.status_code == 403


def test_the_jwks_is_fetched_anonymously_and_discovery_with_the_kubeconfigs_user(
    issuer: ClientClusterIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, issuer.ca_pem, ca_file=True)
    code, documents, err = run_register(capsys, "--kubeconfig", str(kubeconfig), "--name", "alpha")
    assert code == 0, err
    (federation,) = documents
    assert "audiences" not in federation["spec"]
    seen = {(request.path, request.had_bearer_token) for request in issuer.requests}
    assert seen == {("/.well-known/openid-configuration", True), ("/openid/v1/jwks", False)}
    assert KUBECONFIG_TOKEN not in err


def test_a_cluster_that_refuses_anonymous_requests_is_not_registered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ClientClusterIssuer(required_bearer_token=KUBECONFIG_TOKEN) as cluster:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, cluster.ca_pem)
        code, documents, err = run_register(capsys, "--kubeconfig", str(kubeconfig), "--name", "alpha")
    assert (code, documents) == (1, [])
    assert "answered 401" in err
    assert "spec.tokenSecretRef" in err
    assert KUBECONFIG_TOKEN not in err


def test_a_missing_discovery_binding_is_named(
    issuer: ClientClusterIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer.set_jwks_behaviour(JwksBehaviour(status=403))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, issuer.ca_pem)
    code, documents, err = run_register(capsys, "--kubeconfig", str(kubeconfig), "--name", "alpha")
    assert (code, documents) == (1, [])
    assert "system:service-account-issuer-discovery" in err
    assert "--group=system:unauthenticated" in err


def test_a_kubeconfig_ca_that_does_not_vouch_for_the_server_is_a_problem(
    issuer: ClientClusterIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_ca = create_ca("not the cluster's CA").cert_pem.decode()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, other_ca)
    code, documents, err = run_register(capsys, "--kubeconfig", str(kubeconfig), "--name", "alpha")
    assert (code, documents) == (1, [])
    assert "cannot reach the API server" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Alpha_Cluster"], "not a lowercase DNS name"),
        (["--name", "alpha", "--subject", "prometheus"], "is not system:serviceaccount:"),
        (["--name", "alpha", "--subject", SUBJECT], "needs at least one --store"),
        (["--name", "alpha", "--store", STORE], "add --subject"),
        (["--name", "alpha", "--context", "beta"], "beta"),
        (["--name", "alpha", "--url", "http://10.0.0.1:6443"], "must start with https://"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    issuer: ClientClusterIssuer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, issuer.ca_pem)
    code, documents, err = run_register(capsys, "--kubeconfig", str(kubeconfig), *args)
    assert (code, documents) == (2, [])
    assert message in err
    assert issuer.requests == ()


def test_a_kubeconfig_that_skips_tls_verification_is_refused(
    issuer: ClientClusterIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, None, insecure=True)
    code, _, err = run_register(capsys, "--kubeconfig", str(kubeconfig), "--name", "alpha")
    assert code == 2
    assert "skips TLS verification" in err


def test_a_missing_kubeconfig_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_register(capsys, "--kubeconfig", str(tmp_path / "nope"), "--name", "alpha")
    assert code == 2
    assert "no such file" in err


def test_without_kubeconfig_the_kubeconfig_variable_is_used(
    issuer: ClientClusterIssuer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", issuer.url, issuer.ca_pem, context="beta")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, documents, err = run_register(capsys, "--name", "beta", "--context", "beta")
    assert code == 0, err
    assert documents[0]["spec"]["url"] == issuer.url
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    code, _, err = run_register(capsys, "--name", "beta")
    assert code == 2
    assert "$KUBECONFIG" in err
