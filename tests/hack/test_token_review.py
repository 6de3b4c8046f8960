"""The stand-in client cluster answers TokenReviews like an API server, pod deletion included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import requests

from hack.client_issuer import TOKEN_REVIEW_PATH, ClientClusterIssuer
from hack.sa_tokens import TokenIssuer

AUDIENCE = "esi-federation"
REVIEWER = "reviewer-token-for-tests"


@pytest.fixture
def cluster() -> Iterator[ClientClusterIssuer]:
    with ClientClusterIssuer(reviewer_token=REVIEWER) as running:
        yield running


def _post_review(
    cluster: ClientClusterIssuer, tmp_path: Path, body: object, bearer: str | None
) -> requests.Response:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(cluster.ca_pem)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.post(
        cluster.url + TOKEN_REVIEW_PATH, json=body, headers=headers, verify=str(ca_file), timeout=5
    )


def _kubernetes_api(cluster: ClientClusterIssuer, tmp_path: Path) -> kubernetes.client.AuthenticationV1Api:
    """The official client, configured the way a federation server would reach a client cluster."""
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_text(cluster.ca_pem)
    configuration = kubernetes.client.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": f"Bearer {REVIEWER}"}
    return kubernetes.client.AuthenticationV1Api(kubernetes.client.ApiClient(configuration))


def _review(api: kubernetes.client.AuthenticationV1Api, token: str) -> kubernetes.client.V1TokenReviewStatus:
    body = kubernetes.client.V1TokenReview(
        spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=[AUDIENCE])
    )
    return api.create_token_review(body).status


def test_a_live_pod_token_is_authenticated_with_the_service_account_identity(
    cluster: ClientClusterIssuer, tmp_path: Path
) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE], pod_name="prometheus-0")
    status = _review(_kubernetes_api(cluster, tmp_path), token)
    assert status.authenticated is True
    assert status.audiences == [AUDIENCE]
    assert status.user.username == "system:serviceaccount:monitoring:prometheus-esi-client"
    assert "system:serviceaccounts:monitoring" in status.user.groups
    assert status.user.extra["authentication.kubernetes.io/pod-name"] == ["prometheus-0"]


def test_a_token_of_a_deleted_pod_is_no_longer_authenticated(
    cluster: ClientClusterIssuer, tmp_path: Path
) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE], pod_name="prometheus-0")
    api = _kubernetes_api(cluster, tmp_path)
    cluster.delete_pod("monitoring", "prometheus-0")
    status = _review(api, token)
    assert status.authenticated is False
    assert "no longer exists" in status.error
    assert cluster.token_reviews == 1


def test_a_token_for_another_audience_is_not_authenticated(
    cluster: ClientClusterIssuer, tmp_path: Path
) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", ["some-other-service"])
    assert _review(_kubernetes_api(cluster, tmp_path), token).authenticated is False


def test_a_token_signed_by_another_cluster_is_not_authenticated(
    cluster: ClientClusterIssuer, tmp_path: Path
) -> None:
    foreign = TokenIssuer().mint("monitoring", "prometheus-esi-client", [AUDIENCE])
    status = _review(_kubernetes_api(cluster, tmp_path), foreign)
    assert (status.authenticated, status.error) == (False, "invalid bearer token")


def test_an_expired_token_is_not_authenticated(cluster: ClientClusterIssuer, tmp_path: Path) -> None:
    expired = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE], now=1_600_000_000)
    assert _review(_kubernetes_api(cluster, tmp_path), expired).authenticated is False


def test_the_answer_never_echoes_the_reviewed_token(cluster: ClientClusterIssuer, tmp_path: Path) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE])
    response = _post_review(cluster, tmp_path, {"spec": {"token": token, "audiences": [AUDIENCE]}}, REVIEWER)
    assert response.status_code == 201
    assert token not in response.text
    assert response.json()["status"]["authenticated"] is True


def test_a_review_without_the_reviewer_token_is_unauthorized(
    cluster: ClientClusterIssuer, tmp_path: Path
) -> None:
    token = cluster.mint("monitoring", "prometheus-esi-client", [AUDIENCE])
    response = _post_review(cluster, tmp_path, {"spec": {"token": token}}, bearer=token)
    assert response.status_code == 401


def test_a_review_without_a_token_is_a_bad_request(cluster: ClientClusterIssuer, tmp_path: Path) -> None:
    response = _post_review(cluster, tmp_path, {"spec": {"audiences": "not-a-list"}}, REVIEWER)
    assert response.status_code == 400


def test_without_requested_audiences_the_issuer_itself_is_the_audience(cluster: ClientClusterIssuer) -> None:
    assert cluster.review(cluster.mint("ns", "sa", [cluster.issuer]), None)["authenticated"] is True
    assert cluster.review(cluster.mint("ns", "sa", [AUDIENCE]), None)["authenticated"] is False
