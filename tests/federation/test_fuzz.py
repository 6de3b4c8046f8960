"""Random bodies and headers never make /v1/secrets answer a 5xx."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hack.sa_tokens import PodIdentity
from tests.federation.helpers_requests import PASSWORD, b64url, post_secrets
from tests.helpers_stack import AUDIENCE, NAMESPACE, SERVICE_ACCOUNT, FederationStack

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("fuzz")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
names = st.sampled_from(["vault-prod", "vault-staging", "team-store", "Vault_Prod", "", "a" * 300, "x.y-z"])
keys = st.sampled_from(
    ["db-credentials", "api-keys", "team-a/db", "no-such", "", "a\x00b", "../etc"]
) | st.text(max_size=30)
items = st.fixed_dictionaries(
    {"store": names | json_values, "key": keys | json_values},
    optional={"property": st.sampled_from(["password", "username", ""]) | json_values, "extra": json_values},
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"secrets": st.lists(items, max_size=4) | json_values},
        optional={
            "cluster": st.sampled_from(["client-cluster-alpha", "beta", "UPPER", ""]) | json_values,
            "caCert": st.text(max_size=60) | json_values,
            "unknown": json_values,
        },
    ).map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ]
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def _authorization(choice: str, junk: str, token: str) -> str | None:
    return {
        "valid": f"Bearer {token}",
        "none": None,
        "junk": junk,
        "bearer junk": f"Bearer {junk}",
        "tampered": f"Bearer {token[:-4]}AAAA",
        "swapped parts": "Bearer " + ".".join(reversed(token.split("."))),
    }[choice]


@pytest.fixture(scope="module")
def token(shared_stack: FederationStack) -> str:
    """One valid token for every example: minting costs more than a request."""
    return shared_stack.mint()


headers = st.builds(
    lambda content_type, extra: {**extra, "Content-Type": content_type},
    content_types,
    st.dictionaries(
        st.sampled_from(["X-Request-Id", "Accept", "X-Forwarded-For", "Content-Encoding"]),
        header_text,
        max_size=2,
    ),
)
authorizations = st.tuples(
    st.sampled_from(["valid", "none", "junk", "bearer junk", "tampered", "swapped parts"]), header_text
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, sent_headers=headers, auth=authorizations)
def test_random_requests_never_get_a_5xx(
    shared_stack: FederationStack,
    token: str,
    body: bytes,
    sent_headers: dict[str, str],
    auth: tuple[str, str],
) -> None:
    authorization = _authorization(*auth, token)
    if authorization is not None:
        sent_headers = {**sent_headers, "Authorization": authorization}
    response = shared_stack.app.test_client().post("/v1/secrets", data=body, headers=sent_headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.status_code in (200, 400, 401, 403, 404, 413, 415)
    if response.status_code != 200:
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = response.get_json()
        assert problem["status"] == response.status_code


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types)
def test_random_bodies_over_tls_never_get_a_5xx(
    shared_stack: FederationStack, body: bytes, content_type: str
) -> None:
    response = requests.post(
        shared_stack.url + "/v1/secrets",
        data=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
        verify=str(shared_stack.server_ca_file),
        timeout=15,
    )
    assert response.status_code < 500


def test_the_fuzzed_route_still_serves_valid_requests(shared_stack: FederationStack, token: str) -> None:
    response = shared_stack.app.test_client().post(
        "/v1/secrets", json={"secrets": [PASSWORD]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("token_kind", ["valid", "none"])
@pytest.mark.parametrize(
    "body", [b"[" * 50_000, b'{"a":' * 8_000 + b"1" + b"}" * 8_000], ids=["list", "object"]
)
def test_deeply_nested_json_is_a_client_error_not_a_crash(
    shared_stack: FederationStack, token: str, body: bytes, token_kind: str
) -> None:
    assert len(body) < 64 * 1024
    response = post_secrets(shared_stack, token if token_kind == "valid" else None, data=body)
    assert response.status_code == (400 if token_kind == "valid" else 401)
    assert response.headers["Content-Type"] == "application/problem+json"


segments = st.one_of(
    json_values.map(lambda value: b64url(json.dumps(value).encode())),
    st.binary(max_size=60).map(b64url),
    # What an HTTP header can carry: visible ASCII (a newline is refused by the client, not the server).
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=segments, claims=segments, signature=segments, dots=st.integers(min_value=0, max_value=4))
def test_random_tokens_never_get_a_5xx(
    shared_stack: FederationStack, header: str, claims: str, signature: str, dots: int
) -> None:
    token = ".".join([header, claims, signature][: max(dots, 1)]) + "." * max(dots - 2, 0)
    response = shared_stack.app.test_client().post(
        "/v1/secrets", json={"secrets": [PASSWORD]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (401, 503)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header_changes=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5c"]), json_values)
)
def test_random_headers_on_a_validly_signed_token_never_get_a_5xx(
    shared_stack: FederationStack, header_changes: dict[str, object]
) -> None:
    tokens = shared_stack.issuer.tokens
    claims = tokens.claims(PodIdentity(NAMESPACE, SERVICE_ACCOUNT), [AUDIENCE])
    token = tokens.sign(claims, header={**header_changes})
    response = shared_stack.app.test_client().post(
        "/v1/secrets", json={"secrets": [PASSWORD]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (200, 401, 503)
