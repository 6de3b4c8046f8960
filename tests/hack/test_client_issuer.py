"""The stand-in client cluster serves discovery and a JWKS over HTTPS like a Kubernetes API server."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests
import yaml

from hack import client_issuer
from hack.client_issuer import ClientClusterIssuer, JwksBehaviour

AUDIENCE = "esi-federation"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster() -> Iterator[ClientClusterIssuer]:
    with ClientClusterIssuer() as running:
        yield running


@pytest.fixture
def ca_file(cluster: ClientClusterIssuer, tmp_path: Path) -> str:
    path = tmp_path / "cluster-ca.crt"
    path.write_text(cluster.ca_pem)
    return str(path)


def test_key_set_is_served_over_tls_that_the_cluster_ca_verifies(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    response = requests.get(cluster.jwks_url, verify=ca_file, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jwk-set+json"
    assert response.json() == cluster.tokens.jwks()


def test_the_server_is_refused_without_the_cluster_ca(cluster: ClientClusterIssuer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(cluster.jwks_url, timeout=5)


def test_a_minted_token_verifies_against_the_served_key_set(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE], pod_name="prometheus-0")
    key_set = jwt.PyJWKSet.from_dict(requests.get(cluster.jwks_url, verify=ca_file, timeout=5).json())
    key = key_set[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=cluster.issuer)
    assert claims["kubernetes.io"]["pod"]["name"] == "prometheus-0"


def test_discovery_names_the_issuer_and_the_key_set_location(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    document = requests.get(cluster.discovery_url, verify=ca_file, timeout=5).json()
    assert document["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert document["jwks_uri"] == cluster.jwks_url
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_every_key_set_request_is_counted_and_can_be_reset(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    for _ in range(3):
        requests.get(cluster.jwks_url, verify=ca_file, timeout=5)
    requests.get(cluster.discovery_url, verify=ca_file, timeout=5)
    assert cluster.jwks_requests == 3
    assert len(cluster.requests) == 4
    cluster.reset_requests()
    assert cluster.jwks_requests == 0


def test_an_outage_answers_with_the_status_asked_for(cluster: ClientClusterIssuer, ca_file: str) -> None:
    cluster.set_jwks_behaviour(JwksBehaviour(status=503))
    response = requests.get(cluster.jwks_url, verify=ca_file, timeout=5)
    assert response.status_code == 503
    assert response.json()["kind"] == "Status"
    cluster.set_jwks_behaviour(JwksBehaviour())
    assert requests.get(cluster.jwks_url, verify=ca_file, timeout=5).status_code == 200


def test_a_redirect_is_answered_without_serving_keys(cluster: ClientClusterIssuer, ca_file: str) -> None:
    cluster.set_jwks_behaviour(JwksBehaviour(redirect_to="https://127.0.0.2:1/elsewhere"))
    response = requests.get(cluster.jwks_url, verify=ca_file, timeout=5, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://127.0.0.2:1/elsewhere"


def test_a_replacement_body_is_served_verbatim(cluster: ClientClusterIssuer, ca_file: str) -> None:
    oversized = b'{"keys": [' + b" " * 300_000 + b"]}"
    cluster.set_jwks_behaviour(JwksBehaviour(body=oversized))
    assert requests.get(cluster.jwks_url, verify=ca_file, timeout=5).content == oversized


def test_a_slow_key_set_trips_a_client_timeout(cluster: ClientClusterIssuer, ca_file: str) -> None:
    cluster.set_jwks_behaviour(JwksBehaviour(delay_s=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(cluster.jwks_url, verify=ca_file, timeout=0.2)


def test_a_required_bearer_token_is_enforced(tmp_path: Path) -> None:
    with ClientClusterIssuer(required_bearer_token="reviewer-token-for-tests") as cluster:
        ca_file = tmp_path / "ca.crt"
        ca_file.write_text(cluster.ca_pem)
        anonymous = requests.get(cluster.jwks_url, verify=str(ca_file), timeout=5)
        wrong = requests.get(
            cluster.jwks_url, verify=str(ca_file), timeout=5, headers={"Authorization": "Bearer nope"}
        )
        right = requests.get(
            cluster.jwks_url,
            verify=str(ca_file),
            timeout=5,
            headers={"Authorization": "Bearer reviewer-token-for-tests"},
        )
    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert [seen.had_bearer_token for seen in cluster.requests] == [False, True, True]


def test_an_unknown_path_is_not_found(cluster: ClientClusterIssuer, ca_file: str) -> None:
    assert requests.get(cluster.url + "/api/v1/secrets", verify=ca_file, timeout=5).status_code == 404


def test_a_non_loopback_bind_address_is_refused() -> None:
    with pytest.raises(client_issuer.IssuerError, match=r"127\.0\.0\.0/8"):
        ClientClusterIssuer(host="0.0.0.0")


def test_a_second_loopback_address_can_host_another_cluster(tmp_path: Path) -> None:
    with ClientClusterIssuer(host="127.0.0.2") as other:
        ca_file = tmp_path / "ca.crt"
        ca_file.write_text(other.ca_pem)
        assert other.url.startswith("https://127.0.0.2:")
        assert requests.get(other.jwks_url, verify=str(ca_file), timeout=5).status_code == 200


def test_federation_manifest_registers_this_cluster(cluster: ClientClusterIssuer) -> None:
    manifest = cluster.federation_manifest("client-cluster-alpha", audiences=[AUDIENCE])
    assert manifest["apiVersion"] == "identity.federation.external-secrets.io/v1alpha1"
    assert manifest["kind"] == "KubernetesFederation"
    assert manifest["spec"] == {
        "url": cluster.url,
        "issuer": cluster.issuer,
        "caBundle": cluster.ca_pem,
        "audiences": [AUDIENCE],
    }


def test_command_line_serves_and_mints_tokens_that_verify(tmp_path: Path) -> None:
    state = tmp_path / "alpha"
    process = subprocess.Popen(
        [sys.executable, "-m", "hack.client_issuer", "serve", "--state-dir", str(state)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("ready: ")
        info = json.loads((state / "issuer.json").read_text())
        token_file = tmp_path / "token"
        minted = subprocess.run(
            [
                *(sys.executable, "-m", "hack.client_issuer", "mint", "--state-dir", str(state)),
                *("--namespace", "monitoring", "--service-account", "prometheus-esi-client"),
                *("--audience", AUDIENCE, "--out", str(token_file)),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        token = token_file.read_text()
        assert token not in minted.stdout
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "signing-key.pem").stat().st_mode) == 0o600
        key_set = requests.get(info["jwks_url"], verify=str(state / "ca.crt"), timeout=5).json()
        key = jwt.PyJWKSet.from_dict(key_set)[info["kid"]]
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=info["issuer"])
        assert claims["sub"] == "system:serviceaccount:monitoring:prometheus-esi-client"
        federation = yaml.safe_load((state / "federation.yaml").read_text())
        assert federation["spec"]["url"] == info["url"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_mint_without_a_state_directory_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mint", "--state-dir", str(tmp_path / "missing"), "--namespace", "ns", "--service-account", "sa"]
    code = client_issuer.main([*argv, "--audience", AUDIENCE, "--out", str(tmp_path / "token")])
    assert code == 1
    assert "not a state directory" in capsys.readouterr().err
    assert not (tmp_path / "token").exists()


def test_a_burst_of_concurrent_key_set_fetches_is_served_completely(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    def fetch(_: int) -> int:
        return requests.get(cluster.jwks_url, verify=ca_file, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(fetch, range(100)))
    assert statuses == [200] * 100
    assert cluster.jwks_requests == 100


@pytest.mark.parametrize(
    ("path", "accept", "status"),
    [
        (client_issuer.JWKS_PATH, "application/json", 406),
        (client_issuer.JWKS_PATH, "application/*", 406),
        (client_issuer.JWKS_PATH, "application/jwk-set+json", 200),
        (client_issuer.JWKS_PATH, "text/html, application/jwk-set+json;q=0.9", 200),
        (client_issuer.JWKS_PATH, "*/*", 200),
        (client_issuer.JWKS_PATH, None, 200),
        (client_issuer.DISCOVERY_PATH, "application/jwk-set+json", 406),
        (client_issuer.DISCOVERY_PATH, "application/json", 200),
        (client_issuer.DISCOVERY_PATH, "*/*", 200),
    ],
)
def test_accept_is_negotiated_as_kube_apiserver_does(
    cluster: ClientClusterIssuer, ca_file: str, path: str, accept: str | None, status: int
) -> None:
    # requests sends "Accept: */*" unless told otherwise; None removes the header altogether.
    headers = {"Accept": accept}
    response = requests.get(cluster.url + path, headers=headers, verify=ca_file, timeout=5)
    assert response.status_code == status
    if status == 406:
        assert response.headers["Content-Type"].startswith("text/plain")


def test_the_discovery_document_is_application_json(cluster: ClientClusterIssuer, ca_file: str) -> None:
    response = requests.get(cluster.discovery_url, verify=ca_file, timeout=5)
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {
        "issuer",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    }


def test_a_token_review_that_admits_no_json_is_not_acceptable(
    cluster: ClientClusterIssuer, ca_file: str
) -> None:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "x"}}
    url = cluster.url + client_issuer.TOKEN_REVIEW_PATH
    refused = requests.post(url, json=body, headers={"Accept": "text/html"}, verify=ca_file, timeout=5)
    answered = requests.post(url, json=body, headers={"Accept": "application/*"}, verify=ca_file, timeout=5)
    assert (refused.status_code, answered.status_code) == (406, 201)
