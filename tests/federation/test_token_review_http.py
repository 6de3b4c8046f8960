"""spec.tokenReview over real TLS: a deleted pod's token is refused although it still verifies offline."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.config.model import Federation
from federation.settings import Settings
from federation.tokenreview import TokenReviewFailed, post_token_review
from hack.client_issuer import TOKEN_REVIEW_PATH, ClientClusterIssuer
from hack.sa_tokens import TokenIssuer
from tests.cli.helpers_stub_federation import start_stub
from tests.federation.helpers_requests import post_secrets, register
from tests.helpers_stack import (
    AUDIENCE,
    NAMESPACE,
    SERVICE_ACCOUNT,
    FederationStack,
    authorization,
    running_stack,
)

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("token_review_http")

REVIEWER_TOKEN = "reviewer-" + "r" * 24


def _reviewed_federation(
    name: str, cluster: ClientClusterIssuer, reviewer_token: str
) -> list[dict[str, Any]]:
    manifest = cluster.federation_manifest(name, [AUDIENCE])
    manifest["spec"]["tokenReview"] = {
        "tokenSecretRef": {"name": name, "namespace": "esi-system", "key": "token"}
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "esi-system"},
        "data": {"token": base64.b64encode(reviewer_token.encode()).decode()},
    }
    return [manifest, authorization(f"allow-{name}", federation=name, issuer=cluster.issuer), secret]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    with running_stack(tmp_path_factory.mktemp("review"), token_review_cache_ttl=0.0) as running:
        yield running


@pytest.fixture
def cluster() -> Iterator[ClientClusterIssuer]:
    """A cluster with its own issuer that answers TokenReviews for REVIEWER_TOKEN only."""
    with ClientClusterIssuer(TokenIssuer(), reviewer_token=REVIEWER_TOKEN) as started:
        yield started


def _mint(cluster: ClientClusterIssuer, pod: str) -> str:
    return cluster.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE], pod_name=pod)


def test_a_live_pods_token_passes_the_review(stack: FederationStack, cluster: ClientClusterIssuer) -> None:
    register(stack, "live.yaml", *_reviewed_federation("reviewed-live", cluster, REVIEWER_TOKEN))
    assert post_secrets(stack, _mint(cluster, "prometheus-0")).status_code == 200
    reviews = [seen for seen in cluster.requests if seen.path == TOKEN_REVIEW_PATH]
    assert [(seen.had_bearer_token, seen.status) for seen in reviews] == [(True, 201)]


def test_a_deleted_pods_token_is_refused(stack: FederationStack, cluster: ClientClusterIssuer) -> None:
    register(stack, "deleted.yaml", *_reviewed_federation("reviewed-deleted", cluster, REVIEWER_TOKEN))
    token = _mint(cluster, "prometheus-0")
    assert post_secrets(stack, token).status_code == 200
    cluster.delete_pod(NAMESPACE, "prometheus-0")
    refused = post_secrets(stack, token)
    assert refused.status_code == 401
    assert refused.content == post_secrets(stack, None).content
    assert post_secrets(stack, _mint(cluster, "prometheus-1")).status_code == 200


def test_a_wrong_reviewer_token_fails_closed(stack: FederationStack, cluster: ClientClusterIssuer) -> None:
    register(stack, "wrong.yaml", *_reviewed_federation("reviewed-wrong", cluster, "not-the-reviewer-token"))
    response = post_secrets(stack, _mint(cluster, "prometheus-0"))
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_a_token_review_that_drips_its_answer_fails_at_the_total_timeout(tmp_path: Path) -> None:
    # The stub answers every request one byte per 50 ms; each read is quick, the whole answer is not.
    stub, server = start_stub(tmp_path / "stub", "reviewer-token")
    stub.drip_s = 0.05
    try:
        federation = Federation(
            name="dripping", url=stub.url, issuer="https://dripping.example", ca_bundle=stub.server_ca_pem
        )
        settings = Settings(jwks_total_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TokenReviewFailed, match="within 1 s"):
            post_token_review(federation, "reviewer-token", {"spec": {"token": "t"}}, settings)
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        server.server_close()
