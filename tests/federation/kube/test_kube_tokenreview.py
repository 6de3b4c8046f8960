"""TokenReview: a locally valid token is also confirmed by its cluster, with the server's reviewer token."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hack.client_issuer import ClientClusterIssuer
from tests.federation.kube.helpers_kube import (
    FEDERATIONS,
    EmulatedCluster,
    KubeStack,
    ReviewEndpoint,
    kube_stack,
    secret,
    wait_until,
)
from tests.helpers_stack import AUDIENCE, CLUSTER, NAMESPACE, SUBJECT

pytestmark = pytest.mark.slow

REVIEWER_NAMESPACE = "esi-system"
REVIEWER_SECRET = "client-cluster-alpha-reviewer"


@pytest.fixture
def reviewer_token() -> str:
    """The token the federation server reviews with (held in a Secret of cluster-main)."""
    return "reviewer-" + secrets.token_hex(16)


@pytest.fixture
def issuer(reviewer_token: str) -> Iterator[ClientClusterIssuer]:
    """client-cluster-alpha, whose TokenReview API accepts only the reviewer token."""
    with ClientClusterIssuer(reviewer_token=reviewer_token) as cluster:
        yield cluster


@pytest.fixture
def stack(tmp_path: Path, issuer: ClientClusterIssuer, reviewer_token: str) -> Iterator[KubeStack]:
    """The server in Kubernetes mode; client-cluster-alpha asks for TokenReview."""
    with EmulatedCluster() as cluster, kube_stack(tmp_path, cluster=cluster, issuer=issuer) as running:
        enable_token_review(running, reviewer_token)
        yield running


def enable_token_review(stack: KubeStack, reviewer_token: str, spec: dict[str, Any] | None = None) -> None:
    """Store the reviewer token in a Secret and point client-cluster-alpha's tokenReview at it."""
    stack.cluster.create(
        f"/api/v1/namespaces/{REVIEWER_NAMESPACE}/secrets",
        secret(REVIEWER_NAMESPACE, REVIEWER_SECRET, {"token": reviewer_token}),
    )
    ref = {"name": REVIEWER_SECRET, "namespace": REVIEWER_NAMESPACE, "key": "token"}
    stack.cluster.patch(
        FEDERATIONS + "/" + CLUSTER, {"spec": {"tokenReview": {"tokenSecretRef": ref}, **(spec or {})}}
    )

    def configured() -> bool:
        config = stack.app.extensions["esi.service"].holder.current
        federation = config.federations.get(CLUSTER)
        return (
            federation is not None
            and federation.token_review_secret_ref is not None
            and config.secret_value(federation.token_review_secret_ref) is not None
            and (not spec or federation.url == spec.get("url", federation.url))
        )

    wait_until(configured)


def test_a_token_of_a_deleted_pod_is_refused_with_the_uniform_401(stack: KubeStack) -> None:
    alive = stack.fetch(stack.mint(pod_name="prometheus-0"))
    assert alive.status_code == 200, alive.text
    stack.issuer.delete_pod(NAMESPACE, "prometheus-0")
    refused = stack.fetch(stack.mint(pod_name="prometheus-0"))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the bearer token was not accepted"
    assert stack.issuer.token_reviews == 2


def test_a_positive_review_is_reused_for_a_burst_of_requests(stack: KubeStack) -> None:
    token = stack.mint(pod_name="prometheus-0")
    answers = [stack.fetch(token).status_code for _ in range(5)]
    assert answers == [200] * 5
    assert stack.issuer.token_reviews == 1


@pytest.fixture
def scripted(tmp_path: Path, reviewer_token: str) -> Iterator[tuple[KubeStack, ReviewEndpoint]]:
    """client-cluster-alpha's keys from its issuer, its TokenReview API from a scripted endpoint."""
    with (
        ClientClusterIssuer() as issuer,
        ReviewEndpoint(issuer.ca, tmp_path) as endpoint,
        EmulatedCluster() as cluster,
        kube_stack(tmp_path, cluster=cluster, issuer=issuer) as running,
    ):
        enable_token_review(running, reviewer_token, {"url": endpoint.url, "jwksURL": issuer.jwks_url})
        yield running, endpoint


def test_the_review_authenticates_with_the_reviewer_token_never_the_callers(
    scripted: tuple[KubeStack, ReviewEndpoint], reviewer_token: str
) -> None:
    stack, endpoint = scripted
    endpoint.status = {"authenticated": True, "user": {"username": SUBJECT}, "audiences": [AUDIENCE]}
    token = stack.mint()
    answer = stack.fetch(token)
    assert answer.status_code == 200, answer.text
    assert len(endpoint.seen) == 1
    assert endpoint.seen[0].authorization == f"Bearer {reviewer_token}"
    assert token not in (endpoint.seen[0].authorization or "")
    assert endpoint.seen[0].body["spec"] == {"token": token, "audiences": [AUDIENCE]}
    assert endpoint.seen[0].body["kind"] == "TokenReview"


def test_a_review_that_says_not_authenticated_turns_a_valid_jwt_into_401(
    scripted: tuple[KubeStack, ReviewEndpoint],
) -> None:
    stack, endpoint = scripted
    endpoint.status = {"authenticated": False, "error": "pod not found"}
    answer = stack.fetch(stack.mint())
    assert answer.status_code == 401
    assert answer.json()["detail"] == "the bearer token was not accepted"


def test_a_review_for_another_audience_or_user_is_refused(scripted: tuple[KubeStack, ReviewEndpoint]) -> None:
    stack, endpoint = scripted
    endpoint.status = {"authenticated": True, "user": {"username": SUBJECT}, "audiences": ["kubernetes"]}
    assert stack.fetch(stack.mint()).status_code == 401
    endpoint.status = {"authenticated": True, "user": {"username": "system:admin"}, "audiences": [AUDIENCE]}
    assert stack.fetch(stack.mint()).status_code == 401


def test_an_unanswered_review_gives_503(scripted: tuple[KubeStack, ReviewEndpoint]) -> None:
    stack, endpoint = scripted
    endpoint.code = 500
    answer = stack.fetch(stack.mint())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
