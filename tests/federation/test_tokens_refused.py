"""Every token problem is a 401 with one and the same body: the reason goes to the log only."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from hack.sa_tokens import PodIdentity, SigningKey, TokenIssuer, generate_signing_key
from tests.federation.helpers_requests import b64url, hand_made_token, hs256_token, post_secrets
from tests.helpers_stack import AUDIENCE, NAMESPACE, SERVICE_ACCOUNT, FederationStack

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("tokens_refused")


def _claims(stack: FederationStack, **changes: Any) -> dict[str, Any]:
    claims = stack.issuer.tokens.claims(PodIdentity(NAMESPACE, SERVICE_ACCOUNT), [AUDIENCE])
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _signed(stack: FederationStack, header: dict[str, Any] | None = None, **changes: Any) -> str:
    return stack.issuer.tokens.sign(_claims(stack, **changes), header=header)


def _alg_none(stack: FederationStack) -> str:
    kid = stack.issuer.tokens.signing_key.kid
    return hand_made_token({"alg": "none", "kid": kid}, _claims(stack))


def _hs256_with_public_key(stack: FederationStack) -> str:
    signing = stack.issuer.tokens.signing_key
    public_pem = signing.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hs256_token({"alg": "HS256", "kid": signing.kid, "typ": "JWT"}, _claims(stack), public_pem)


def _expired(stack: FederationStack) -> str:
    return stack.mint(now=int(time.time()) - 3600, lifetime_s=600)


def _iat_not_a_number(stack: FederationStack) -> str:
    return _signed(stack, iat=math.nan, exp=int(time.time()) + 10 * 365 * 86400)


def _exp_not_a_number(stack: FederationStack) -> str:
    return _signed(stack, exp=math.nan)


def _not_yet_valid(stack: FederationStack) -> str:
    return _signed(stack, nbf=int(time.time()) + 600)


def _lives_too_long(stack: FederationStack) -> str:
    return stack.mint(lifetime_s=2 * 3600)


def _wrong_issuer(stack: FederationStack) -> str:
    return _signed(stack, iss="https://kubernetes.evil.example")


def _no_audience(stack: FederationStack) -> str:
    return _signed(stack, aud=None)


def _wrong_audience(stack: FederationStack) -> str:
    return stack.mint(audiences=["vault"])


def _extra_audience(stack: FederationStack) -> str:
    return stack.mint(audiences=[AUDIENCE, "https://kubernetes.default.svc"])


def _legacy(stack: FederationStack) -> str:
    return stack.issuer.tokens.mint_legacy(NAMESPACE, SERVICE_ACCOUNT)


def _no_kid(stack: FederationStack) -> str:
    return _signed(stack, header={"kid": None})


def _unknown_kid(stack: FederationStack) -> str:
    unpublished = generate_signing_key()
    return stack.issuer.tokens.sign(_claims(stack), key=unpublished)


def _published_kid_but_unpublished_key(stack: FederationStack) -> str:
    unpublished = generate_signing_key()
    kid = stack.issuer.tokens.signing_key.kid
    return stack.issuer.tokens.sign(_claims(stack), key=unpublished, header={"kid": kid})


def _sub_disagrees_with_kubernetes_claims(stack: FederationStack) -> str:
    claims = _claims(stack)
    claims["kubernetes.io"]["serviceaccount"]["name"] = "someone-else"
    return stack.issuer.tokens.sign(claims)


def _sub_namespace_disagrees(stack: FederationStack) -> str:
    claims = _claims(stack)
    claims["kubernetes.io"]["namespace"] = "kube-system"
    return stack.issuer.tokens.sign(claims)


def _another_clusters_key(stack: FederationStack) -> str:
    other = TokenIssuer(stack.issuer.issuer)
    return other.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE])


def _algorithm_the_jwk_does_not_name(stack: FederationStack) -> str:
    rsa_key = stack.issuer.tokens.signing_key
    as_pss = SigningKey("PS256", rsa_key.private_key, rsa_key.kid)  # the JWK says RS256
    return stack.issuer.tokens.sign(_claims(stack), key=as_pss)


def _crit_header(stack: FederationStack) -> str:
    return _signed(stack, header={"crit": ["exp"]})


def _oversized(stack: FederationStack) -> str:
    return _signed(stack, padding="x" * (17 * 1024))


def _deeply_nested_header(stack: FederationStack) -> str:
    header = {"alg": "RS256", "kid": stack.issuer.tokens.signing_key.kid}
    nested = json.dumps(header)[:-1] + ', "x": ' + "[" * 4000 + "]" * 4000 + "}"
    return f"{b64url(nested.encode())}.{_signed(stack).split('.', 1)[1]}"


def _deeply_nested_claims(stack: FederationStack) -> str:
    claims = json.dumps(_claims(stack))[:-1] + ', "x": ' + "[" * 4000 + "]" * 4000 + "}"
    header, _, signature = _signed(stack).split(".")
    return f"{header}.{b64url(claims.encode())}.{signature}"


def _garbage(stack: FederationStack) -> str:
    return "not-a-jwt"


BAD_TOKENS: dict[str, Callable[[FederationStack], str]] = {
    "alg none": _alg_none,
    "HS256 signed with the RSA public key": _hs256_with_public_key,
    "expired": _expired,
    "nbf in the future": _not_yet_valid,
    "iat NaN and a ten-year exp": _iat_not_a_number,
    "exp NaN": _exp_not_a_number,
    "lifetime over the limit": _lives_too_long,
    "wrong iss": _wrong_issuer,
    "missing aud": _no_audience,
    "wrong aud": _wrong_audience,
    "extra aud": _extra_audience,
    "legacy token": _legacy,
    "no exp": lambda stack: _signed(stack, exp=None),
    "no iat": lambda stack: _signed(stack, iat=None),
    "no kid": _no_kid,
    "unknown kid": _unknown_kid,
    "known kid, unpublished key": _published_kid_but_unpublished_key,
    "sub does not match the service account claim": _sub_disagrees_with_kubernetes_claims,
    "sub does not match the namespace claim": _sub_namespace_disagrees,
    "another cluster's key": _another_clusters_key,
    "PS256 with a key the JWK pins to RS256": _algorithm_the_jwk_does_not_name,
    "crit header": _crit_header,
    "over 16 KiB": _oversized,
    "not a JWT": _garbage,
    "deeply nested JSON in the header": _deeply_nested_header,
    "deeply nested JSON in the claims": _deeply_nested_claims,
    "400-digit exp": lambda stack: _signed(stack, exp=10**400),
    "400-digit negative iat": lambda stack: _signed(stack, iat=-(10**400)),
    "400-digit nbf": lambda stack: _signed(stack, nbf=10**400),
    "exp just past 2**53": lambda stack: _signed(stack, exp=2**53 + 1),
}


@pytest.fixture(scope="module")
def reference_401(shared_stack: FederationStack) -> requests.Response:
    """The answer to a request without any Authorization header: every 401 must look like it."""
    response = post_secrets(shared_stack, None)
    assert response.status_code == 401
    return response


def test_a_request_without_a_token_is_refused_as_a_problem(reference_401: requests.Response) -> None:
    assert reference_401.headers["Content-Type"] == "application/problem+json"
    assert reference_401.json()["status"] == 401
    assert reference_401.json()["detail"] == "the bearer token was not accepted"


def test_the_valid_token_these_bad_ones_are_made_from_is_accepted(shared_stack: FederationStack) -> None:
    assert post_secrets(shared_stack, _signed(shared_stack)).status_code == 200


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_is_refused_with_the_uniform_body(
    shared_stack: FederationStack, reference_401: requests.Response, make: Callable[[FederationStack], str]
) -> None:
    response = post_secrets(shared_stack, make(shared_stack))
    assert response.status_code == 401
    assert response.content == reference_401.content
    assert response.headers["Content-Type"] == reference_401.headers["Content-Type"]


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc"],
    ids=["empty", "bearer without token", "bearer with blanks", "basic", "other scheme"],
)
def test_malformed_authorization_header_is_refused_with_the_uniform_body(
    shared_stack: FederationStack, reference_401: requests.Response, authorization: str
) -> None:
    response = post_secrets(shared_stack, None, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.content == reference_401.content


def test_a_token_just_under_the_size_cap_is_not_refused_for_its_size(shared_stack: FederationStack) -> None:
    token = _signed(shared_stack, padding="x" * (10 * 1024))
    assert len(token) < 16 * 1024
    assert post_secrets(shared_stack, token).status_code == 200


def test_an_es256_token_is_accepted_when_the_cluster_publishes_its_key(
    federation_stack: FederationStack,
) -> None:
    stack = federation_stack
    stack.issuer.tokens.rotate("ES256")
    response = post_secrets(stack, stack.mint())
    assert response.status_code == 200, response.text
