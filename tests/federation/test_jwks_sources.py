"""Where keys come from: merged first fetches, static and mirrored key sets, a bearer for the fetch, stale
keys that age out, and header members that must never make the server fetch anything."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from hack.sa_tokens import PodIdentity, TokenIssuer, generate_signing_key
from tests.federation.helpers_requests import post_secrets, register
from tests.helpers_stack import (
    AUDIENCE,
    NAMESPACE,
    SERVICE_ACCOUNT,
    FederationStack,
    authorization,
    running_stack,
    start_cluster,
)

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("jwks_sources")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    with running_stack(tmp_path_factory.mktemp("sources")) as running:
        yield running


def _grant(cluster: ClientClusterIssuer, name: str) -> dict[str, Any]:
    return authorization(f"allow-{name}", federation=name, issuer=cluster.issuer)


def _mint(cluster: ClientClusterIssuer) -> str:
    return cluster.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])


def test_concurrent_first_requests_share_one_jwks_fetch(stack: FederationStack, clusters: ExitStack) -> None:
    cluster = start_cluster(clusters, "merged")
    cluster.set_jwks_behaviour(JwksBehaviour(delay_s=0.5))  # every request arrives while the fetch runs
    register(
        stack, "merged.yaml", cluster.federation_manifest("merged", [AUDIENCE]), _grant(cluster, "merged")
    )
    tokens = [_mint(cluster) for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda token: post_secrets(stack, token).status_code, tokens))
    assert statuses == [200] * 16
    assert cluster.jwks_requests == 1


def test_the_key_set_is_fetched_with_an_accept_the_api_server_admits(
    stack: FederationStack, clusters: ExitStack
) -> None:
    # The stand-in answers 406 to an Accept without application/jwk-set+json, as kube-apiserver does:
    # an "Accept: application/json" fetch made every request of a real client cluster a 503.
    cluster = start_cluster(clusters, "negotiated")
    register(
        stack,
        "negotiated.yaml",
        cluster.federation_manifest("negotiated", [AUDIENCE]),
        _grant(cluster, "negotiated"),
    )
    assert post_secrets(stack, _mint(cluster)).status_code == 200
    assert [seen.status for seen in cluster.requests if seen.path == "/openid/v1/jwks"] == [200]


def test_a_static_jwks_is_used_without_fetching(stack: FederationStack, clusters: ExitStack) -> None:
    cluster = start_cluster(clusters, "static")
    manifest = cluster.federation_manifest("static", [AUDIENCE])
    manifest["spec"]["jwks"] = cluster.tokens.jwks()
    register(stack, "static.yaml", manifest, _grant(cluster, "static"))
    assert post_secrets(stack, _mint(cluster)).status_code == 200
    assert cluster.jwks_requests == 0


def test_a_jwks_url_override_is_fetched_instead_of_the_api_server(
    stack: FederationStack, clusters: ExitStack
) -> None:
    cluster = start_cluster(clusters, "mirrored")
    mirror = clusters.enter_context(ClientClusterIssuer(cluster.tokens, host="127.0.0.8"))
    manifest = cluster.federation_manifest("mirrored", [AUDIENCE])
    manifest["spec"].update({"jwksURL": mirror.jwks_url, "caBundle": mirror.ca_pem})
    register(stack, "mirrored.yaml", manifest, _grant(cluster, "mirrored"))
    assert post_secrets(stack, _mint(cluster)).status_code == 200
    assert (cluster.jwks_requests, mirror.jwks_requests) == (0, 1)


def test_the_jwks_fetch_carries_the_configured_bearer_never_the_callers(
    stack: FederationStack, clusters: ExitStack
) -> None:
    reader_token = "jwks-reader-" + "x" * 20
    cluster = start_cluster(clusters, "private", required_bearer_token=reader_token)
    manifest = cluster.federation_manifest("private", [AUDIENCE])
    manifest["spec"]["tokenSecretRef"] = {"name": "private-jwks", "namespace": "esi-system", "key": "token"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "private-jwks", "namespace": "esi-system"},
        "data": {"token": base64.b64encode(reader_token.encode()).decode()},
    }
    register(stack, "private.yaml", manifest, _grant(cluster, "private"), secret)
    assert post_secrets(stack, _mint(cluster)).status_code == 200
    jwks_requests = [seen for seen in cluster.requests if seen.path == "/openid/v1/jwks"]
    assert [(seen.had_bearer_token, seen.status) for seen in jwks_requests] == [(True, 200)]


def test_without_the_bearer_a_private_cluster_cannot_be_verified(
    stack: FederationStack, clusters: ExitStack
) -> None:
    cluster = start_cluster(clusters, "private-no-secret", required_bearer_token="only-the-server-knows")
    register(stack, "private-no-secret.yaml", cluster.federation_manifest("private-no-secret", [AUDIENCE]))
    assert post_secrets(stack, _mint(cluster)).status_code == 503
    assert [seen.status for seen in cluster.requests] == [401]


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_key_location_headers_are_never_fetched(
    stack: FederationStack, clusters: ExitStack, member: str
) -> None:
    cluster = start_cluster(clusters, f"located-{member}")
    lure = clusters.enter_context(ClientClusterIssuer(cluster.tokens, host="127.0.0.9"))
    name = f"located-{member}"
    register(stack, f"{name}.yaml", cluster.federation_manifest(name, [AUDIENCE]), _grant(cluster, name))
    claims = cluster.tokens.claims(PodIdentity(NAMESPACE, SERVICE_ACCOUNT), [AUDIENCE])
    token = cluster.tokens.sign(claims, header={member: lure.jwks_url})
    assert post_secrets(stack, token).status_code == 200  # ignored, as README.md's security model says
    assert lure.requests == ()


def test_stale_keys_are_dropped_after_the_maximum_age(tmp_path: Path) -> None:
    with running_stack(
        tmp_path, jwks_refresh_interval=0.2, jwks_unknown_kid_interval=0.2, jwks_max_stale=2.0
    ) as own:
        assert post_secrets(own, own.mint()).status_code == 200
        own.issuer.set_jwks_behaviour(JwksBehaviour(status=503))
        time.sleep(0.3)
        assert post_secrets(own, own.mint()).status_code == 200  # stale, still trusted
        time.sleep(2.0)
        response = post_secrets(own, own.mint())
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0


def test_the_server_audience_applies_when_a_federation_sets_none(tmp_path: Path) -> None:
    with running_stack(tmp_path, audience="cluster-main") as own:
        since = own.reload_count()
        own.write("client-cluster-alpha.yaml", own.issuer.federation_manifest(own.cluster))  # no audiences
        own.wait_for_reload(since)
        assert post_secrets(own, own.mint(audiences=["cluster-main"])).status_code == 200
        assert post_secrets(own, own.mint()).status_code == 401  # esi-federation is not the audience now


@pytest.mark.parametrize(
    ("algorithm", "status"),
    [
        *[(algorithm, 200) for algorithm in ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")],
        *[(algorithm, 401) for algorithm in ("PS384", "PS512")],
    ],
)
def test_the_allowed_algorithms_verify_and_no_others(
    stack: FederationStack, clusters: ExitStack, algorithm: str, status: int
) -> None:
    name = f"alg-{algorithm.lower()}"
    tokens = TokenIssuer(f"https://{name}.example", [generate_signing_key(algorithm)])
    cluster = clusters.enter_context(ClientClusterIssuer(tokens))
    register(stack, f"{name}.yaml", cluster.federation_manifest(name, [AUDIENCE]), _grant(cluster, name))
    assert post_secrets(stack, _mint(cluster)).status_code == status
