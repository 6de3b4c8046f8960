"""Attacks on the token check, and outages of a client cluster's JWKS endpoint, over real TLS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from hack.certs import create_ca
from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from hack.sa_tokens import PodIdentity, TokenIssuer, generate_signing_key
from tests.federation.helpers_requests import PASSWORD, get, metric_value, post_secrets
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    SUBJECT,
    FederationStack,
    authorization,
    fake_store,
    running_stack,
)

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("attacks")

BETA = "client-cluster-beta"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    """One server for this module's attacks; each test registers the client clusters it needs."""
    with running_stack(tmp_path_factory.mktemp("attacks")) as running:
        yield running


@pytest.fixture
def issuers(stack: FederationStack) -> Iterator[ExitStack]:
    """Extra client clusters a test starts and registers; all stopped and unregistered at the end."""
    before = {path.name for path in stack.manifests_dir.iterdir()}
    with ExitStack() as started:
        yield started
    added = {path.name for path in stack.manifests_dir.iterdir()} - before
    if added:
        since = stack.reload_count()
        for filename in added:
            stack.remove(filename)
        stack.wait_for_reload(since)


def _start(
    issuers: ExitStack, tokens: TokenIssuer | None = None, host: str = "127.0.0.1"
) -> ClientClusterIssuer:
    return issuers.enter_context(ClientClusterIssuer(tokens, host=host))


def _register(stack: FederationStack, filename: str, *documents: dict[str, object]) -> None:
    since = stack.reload_count()
    stack.write(filename, *documents)
    stack.wait_for_reload(since)


def _mint(cluster: ClientClusterIssuer) -> str:
    return cluster.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])


def _granted_cluster(
    stack: FederationStack, issuers: ExitStack, name: str, tokens: TokenIssuer | None = None
) -> ClientClusterIssuer:
    """A client cluster with its own issuer string, registered as ``name`` and granted vault-prod."""
    cluster = _start(issuers, tokens or TokenIssuer(f"https://{name}.example"))
    _register(
        stack,
        f"{name}.yaml",
        cluster.federation_manifest(name, audiences=[AUDIENCE]),
        authorization(f"allow-{name}", federation=name, issuer=cluster.issuer),
    )
    return cluster


# -- two federations, one issuer ---------------------------------------------------------------------


@pytest.fixture
def beta(stack: FederationStack, issuers: ExitStack) -> ClientClusterIssuer:
    """client-cluster-beta: the same issuer string as alpha, its own keys and CA, its own grant."""
    cluster = _start(issuers, host="127.0.0.2")
    assert cluster.issuer == stack.issuer.issuer
    assert cluster.tokens.signing_key.kid != stack.issuer.tokens.signing_key.kid
    _register(
        stack,
        "beta.yaml",
        cluster.federation_manifest(BETA, audiences=[AUDIENCE]),
        fake_store("beta-store", {"db-credentials": {"password": "beta-password"}}),
        authorization("allow-beta-monitoring", federation=BETA, stores=["beta-store"]),
    )
    return cluster


def test_same_issuer_token_of_cluster_b_is_verified_as_b_and_reads_only_b_grant(
    stack: FederationStack, beta: ClientClusterIssuer
) -> None:
    token = _mint(beta)
    own = post_secrets(stack, token, secrets=[{"store": "beta-store", "key": "db-credentials"}])
    assert own.status_code == 200, own.text
    assert own.json()["identity"] == {"cluster": BETA, "subject": SUBJECT}
    assert post_secrets(stack, token).status_code == 403
    assert post_secrets(stack, stack.mint()).json()["identity"]["cluster"] == CLUSTER


def test_same_issuer_token_of_cluster_b_never_reads_a_grant_whatever_the_hints(
    stack: FederationStack, beta: ClientClusterIssuer
) -> None:
    token = _mint(beta)
    hints: list[dict[str, object]] = [
        {"cluster": CLUSTER},
        {"caCert": stack.issuer.ca_pem},
        {"caCert": base64.b64encode(stack.issuer.ca_pem.encode()).decode()},
        {"cluster": CLUSTER, "caCert": stack.issuer.ca_pem},
        {"cluster": BETA, "caCert": stack.issuer.ca_pem},
    ]
    for hint in hints:
        response = post_secrets(stack, token, {**hint, "secrets": [PASSWORD]})
        assert response.status_code in (401, 403), hint
        assert stack.values["password"] not in response.text


def test_a_b_token_carrying_a_kid_of_cluster_a_is_refused(
    stack: FederationStack, beta: ClientClusterIssuer
) -> None:
    claims = beta.tokens.claims(PodIdentity(NAMESPACE, SERVICE_ACCOUNT), [AUDIENCE])
    forged = beta.tokens.sign(claims, header={"kid": stack.issuer.tokens.signing_key.kid})
    assert post_secrets(stack, forged).status_code == 401
    assert post_secrets(stack, forged, {"cluster": CLUSTER, "secrets": [PASSWORD]}).status_code == 401


def test_a_ca_hint_over_the_cap_is_ignored_on_both_routes_alike(
    stack: FederationStack, beta: ClientClusterIssuer
) -> None:
    # beta's CA as the hint narrows alpha's token to beta (401); padded past 32 KiB it narrows nothing.
    oversize = beta.ca_pem + " " * (32 * 1024)
    token = stack.mint()
    assert post_secrets(stack, token, {"caCert": beta.ca_pem, "secrets": [PASSWORD]}).status_code == 401
    assert post_secrets(stack, token, {"caCert": oversize, "secrets": [PASSWORD]}).status_code == 400
    compat = f"{stack.url}/secretstore/vault-prod/secrets/db-credentials"

    def compat_status(hint: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps({"ca.crt": hint})
        return requests.post(
            compat, data=body, headers=headers, verify=str(stack.server_ca_file), timeout=15
        ).status_code

    assert compat_status(beta.ca_pem) == 401
    assert compat_status(oversize) == 200


# -- the client-sent CA is never a trust anchor -----------------------------------------------------


@pytest.mark.parametrize("ca_bundle", ["another CA", "none (system trust store)"])
def test_a_federation_whose_jwks_cert_only_the_client_sent_ca_vouches_for_gives_no_200(
    stack: FederationStack, issuers: ExitStack, ca_bundle: str
) -> None:
    gamma = _start(issuers, TokenIssuer("https://gamma.example"), host="127.0.0.3")
    manifest = gamma.federation_manifest("client-cluster-gamma", audiences=[AUDIENCE], with_ca_bundle=False)
    if ca_bundle == "another CA":
        manifest["spec"]["caBundle"] = create_ca("not gamma's CA").cert_pem.decode()
    _register(
        stack,
        "gamma.yaml",
        manifest,
        authorization("allow-gamma", federation="client-cluster-gamma", issuer="https://gamma.example"),
    )
    for body in (
        {"cluster": "client-cluster-gamma", "caCert": gamma.ca_pem, "secrets": [PASSWORD]},
        {"caCert": gamma.ca_pem, "secrets": [PASSWORD]},
        {"secrets": [PASSWORD]},
    ):
        response = post_secrets(stack, _mint(gamma), body)
        assert response.status_code == 503, response.text
        assert stack.values["password"] not in response.text
    assert gamma.jwks_requests == 0  # every TLS handshake failed: nothing was ever fetched


# -- kid floods --------------------------------------------------------------------------------------


def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_30_seconds(
    stack: FederationStack, issuers: ExitStack
) -> None:
    zeta = _granted_cluster(stack, issuers, "client-cluster-zeta")
    assert post_secrets(stack, _mint(zeta)).status_code == 200
    assert zeta.jwks_requests == 1
    attacker = generate_signing_key()
    claims = zeta.tokens.claims(PodIdentity(NAMESPACE, SERVICE_ACCOUNT), [AUDIENCE])
    tokens = [zeta.tokens.sign(claims, key=attacker, header={"kid": f"flood-{i}"}) for i in range(400)]
    client = stack.app.test_client()

    def send(batch: list[str]) -> list[int]:
        # A few over TLS, most through the app directly: the JWKS fetches do not depend on the transport.
        with requests.Session() as session:
            over_tls = [post_secrets(stack, token, session=session).status_code for token in batch[:6]]
        direct = [
            client.post("/v1/secrets", json={"secrets": [PASSWORD]}, headers={"Authorization": f"Bearer {t}"})
            for t in batch[6:]
        ]
        return over_tls + [response.status_code for response in direct]

    with ThreadPoolExecutor(8) as pool:
        statuses = [status for batch in pool.map(send, [tokens[i::8] for i in range(8)]) for status in batch]
    assert statuses == [401] * 400
    assert zeta.jwks_requests <= 2
    assert post_secrets(stack, _mint(zeta)).status_code == 200


def test_unknown_kid_refreshes_when_the_cluster_rotated_its_key(tmp_path: Path) -> None:
    with running_stack(tmp_path, jwks_unknown_kid_interval=0.2) as own:
        assert post_secrets(own, own.mint()).status_code == 200
        own.issuer.tokens.rotate()
        time.sleep(0.3)
        assert post_secrets(own, own.mint()).status_code == 200
        assert own.issuer.jwks_requests == 2


# -- JWKS outages ------------------------------------------------------------------------------------


def test_known_keys_keep_working_while_the_jwks_endpoint_is_down(tmp_path: Path) -> None:
    with running_stack(tmp_path, jwks_refresh_interval=0.3) as own:
        assert post_secrets(own, own.mint()).status_code == 200
        own.issuer.set_jwks_behaviour(JwksBehaviour(status=503))
        time.sleep(0.4)
        fetched_before = own.issuer.jwks_requests
        responses = [post_secrets(own, own.mint()) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert own.issuer.jwks_requests > fetched_before  # a refresh was attempted, and failed
        metrics = get(own, "/metrics").text
        assert metric_value(metrics, "esi_federation_jwks_stale", {"federation": CLUSTER}) == 1
        labels = {"federation": CLUSTER, "result": "error"}
        assert metric_value(metrics, "esi_federation_jwks_fetches_total", labels) >= 1


def test_a_jwks_endpoint_that_hangs_is_given_up_after_the_total_timeout(tmp_path: Path) -> None:
    with running_stack(tmp_path, jwks_total_timeout=0.5) as own:
        own.issuer.set_jwks_behaviour(JwksBehaviour(delay_s=3))
        started = time.monotonic()
        response = post_secrets(own, own.mint())
        assert response.status_code == 503
        assert time.monotonic() - started < 2.5


def test_a_jwks_endpoint_that_drips_is_given_up_after_the_total_timeout(tmp_path: Path) -> None:
    # A per-read timeout never fires while a byte arrives every 50 ms: only a total deadline does.
    with running_stack(tmp_path, jwks_total_timeout=1.0) as own:
        own.issuer.set_jwks_behaviour(JwksBehaviour(drip_s=0.05))
        started = time.monotonic()
        response = post_secrets(own, own.mint())
        assert response.status_code == 503
        assert time.monotonic() - started < 3.0


def test_a_slow_federation_never_delays_requests_for_another(
    stack: FederationStack, issuers: ExitStack
) -> None:
    slow = _start(issuers, TokenIssuer("https://slow.example"), host="127.0.0.9")
    slow.set_jwks_behaviour(JwksBehaviour(drip_s=0.05))
    _register(stack, "slow.yaml", slow.federation_manifest("client-cluster-slow", audiences=[AUDIENCE]))
    # The first requests after the change: each federation's first fetch runs on its own.
    token = stack.mint()
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        statuses = list(pool.map(lambda _: post_secrets(stack, token).status_code, range(8)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    assert elapsed < 2.0
    slow.set_jwks_behaviour(JwksBehaviour())


def test_a_jwks_endpoint_down_from_the_start_gives_503_with_retry_after(
    stack: FederationStack, issuers: ExitStack
) -> None:
    tokens = TokenIssuer("https://client-cluster-eta.example")
    eta = _start(issuers, tokens)
    eta.set_jwks_behaviour(JwksBehaviour(status=503))
    _register(stack, "eta.yaml", eta.federation_manifest("client-cluster-eta", audiences=[AUDIENCE]))
    response = post_secrets(stack, _mint(eta))
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0


def test_a_cluster_that_behaves_is_served(stack: FederationStack, issuers: ExitStack) -> None:
    delta = _granted_cluster(stack, issuers, "client-cluster-delta")
    response = post_secrets(stack, _mint(delta))
    assert response.status_code == 200
    assert response.json()["identity"]["cluster"] == "client-cluster-delta"


def test_a_jwks_redirect_is_not_followed(stack: FederationStack, issuers: ExitStack) -> None:
    tokens = TokenIssuer("https://client-cluster-theta.example")
    mirror = _start(issuers, tokens, host="127.0.0.5")  # serves the very same keys
    theta = _start(issuers, tokens, host="127.0.0.4")
    theta.set_jwks_behaviour(JwksBehaviour(redirect_to=mirror.jwks_url))
    manifest = theta.federation_manifest("client-cluster-theta", audiences=[AUDIENCE])
    manifest["spec"]["caBundle"] = theta.ca_pem + mirror.ca_pem  # the mirror would be trusted
    _register(
        stack,
        "theta.yaml",
        manifest,
        authorization("allow-theta", federation="client-cluster-theta", issuer=tokens.issuer),
    )
    response = post_secrets(stack, _mint(theta))
    assert response.status_code == 503
    assert theta.jwks_requests == 1
    assert mirror.jwks_requests == 0


def _served_body(cluster: ClientClusterIssuer, body: bytes) -> None:
    cluster.set_jwks_behaviour(JwksBehaviour(body=body))


def test_a_jwks_over_256_kib_is_refused(stack: FederationStack, issuers: ExitStack) -> None:
    iota = _start(issuers, TokenIssuer("https://client-cluster-iota.example"))
    _served_body(iota, json.dumps(iota.tokens.jwks() | {"padding": "x" * (257 * 1024)}).encode())
    _register(stack, "iota.yaml", iota.federation_manifest("client-cluster-iota", audiences=[AUDIENCE]))
    assert post_secrets(stack, _mint(iota)).status_code == 503
    assert iota.jwks_requests == 1


def test_a_jwks_just_under_256_kib_is_accepted(stack: FederationStack, issuers: ExitStack) -> None:
    kappa = _start(issuers, TokenIssuer("https://client-cluster-kappa.example"))
    _served_body(kappa, json.dumps(kappa.tokens.jwks() | {"padding": "x" * (250 * 1024)}).encode())
    _register(
        stack,
        "kappa.yaml",
        kappa.federation_manifest("client-cluster-kappa", audiences=[AUDIENCE]),
        authorization("allow-kappa", federation="client-cluster-kappa", issuer=kappa.issuer),
    )
    assert post_secrets(stack, _mint(kappa)).status_code == 200


def test_a_jwks_with_more_than_50_keys_is_refused(stack: FederationStack, issuers: ExitStack) -> None:
    lam = _start(issuers, TokenIssuer("https://client-cluster-lambda.example"))
    real = lam.tokens.jwks()["keys"]
    _served_body(
        lam, json.dumps({"keys": real + [dict(real[0], kid=f"filler-{i}") for i in range(50)]}).encode()
    )
    _register(stack, "lambda.yaml", lam.federation_manifest("client-cluster-lambda", audiences=[AUDIENCE]))
    assert post_secrets(stack, _mint(lam)).status_code == 503


def test_an_rsa_key_under_2048_bits_is_refused(stack: FederationStack, issuers: ExitStack) -> None:
    tokens = TokenIssuer("https://client-cluster-weak.example", [generate_signing_key(rsa_bits=1024)])
    weak = _granted_cluster(stack, issuers, "client-cluster-weak", tokens)
    assert post_secrets(stack, _mint(weak)).status_code == 401
    assert weak.jwks_requests >= 1


# -- one key, two federations ------------------------------------------------------------------------


def test_a_key_published_by_two_federations_is_refused_in_both(
    stack: FederationStack, issuers: ExitStack
) -> None:
    tokens = TokenIssuer("https://epsilon.example")
    one, two = _start(issuers, tokens, host="127.0.0.6"), _start(issuers, tokens, host="127.0.0.7")
    documents = []
    for name, cluster in (("epsilon-1", one), ("epsilon-2", two)):
        documents += [
            cluster.federation_manifest(name, audiences=[AUDIENCE]),
            authorization(f"allow-{name}", federation=name, issuer=tokens.issuer),
        ]
    _register(stack, "epsilon.yaml", *documents)
    token = _mint(one)
    # A hint that names one of them first: the other one's keys were never fetched yet.
    for hint in ({"cluster": "epsilon-1"}, {}, {"cluster": "epsilon-2"}, {"caCert": one.ca_pem}):
        assert post_secrets(stack, token, {**hint, "secrets": [PASSWORD]}).status_code == 401, hint
    metrics = get(stack, "/metrics").text
    for name in ("epsilon-1", "epsilon-2"):
        assert metric_value(metrics, "esi_federation_jwks_duplicate_keys", {"federation": name}) == 1


def test_a_key_published_twice_with_a_leading_zero_in_its_modulus_is_still_refused(
    stack: FederationStack, issuers: ExitStack
) -> None:
    tokens = TokenIssuer("https://zeta.example")
    one, two = _start(issuers, tokens, host="127.0.0.10"), _start(issuers, tokens, host="127.0.0.11")
    jwk = tokens.jwks()["keys"][0]
    modulus = base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4))
    padded = base64.urlsafe_b64encode(b"\0" + modulus).rstrip(b"=").decode()
    two.set_jwks_behaviour(JwksBehaviour(body=json.dumps({"keys": [{**jwk, "n": padded}]}).encode()))
    documents = []
    for name, cluster in (("zeta-1", one), ("zeta-2", two)):
        documents += [
            cluster.federation_manifest(name, audiences=[AUDIENCE]),
            authorization(f"allow-{name}", federation=name, issuer=tokens.issuer),
        ]
    _register(stack, "zeta.yaml", *documents)
    token = _mint(one)
    for hint in ({"cluster": "zeta-1"}, {}, {"cluster": "zeta-2"}):
        assert post_secrets(stack, token, {**hint, "secrets": [PASSWORD]}).status_code == 401, hint
    metrics = get(stack, "/metrics").text
    for name in ("zeta-1", "zeta-2"):
        assert metric_value(metrics, "esi_federation_jwks_duplicate_keys", {"federation": name}) == 1
