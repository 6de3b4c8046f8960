"""Tokens minted by the stand-in issuer look and verify like a Kubernetes API server's."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from hack import sa_tokens

AUDIENCE = "esi-federation"


def _verify(token: str, issuer: sa_tokens.TokenIssuer, audience: str = AUDIENCE) -> dict[str, Any]:
    """Verify the way the federation server does: PyJWT, the JWK chosen by kid, explicit algorithms."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(issuer.jwks())[kid]
    return jwt.decode(
        token, key, algorithms=list(sa_tokens.SUPPORTED_ALGORITHMS), audience=audience, issuer=issuer.issuer
    )


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.mark.parametrize("algorithm", sa_tokens.SUPPORTED_ALGORITHMS)
def test_token_of_every_supported_algorithm_verifies_against_the_published_key_set(algorithm: str) -> None:
    issuer = sa_tokens.TokenIssuer(keys=[sa_tokens.generate_signing_key(algorithm)])
    token = issuer.mint("monitoring", "prometheus-esi-client", [AUDIENCE])
    claims = _verify(token, issuer)
    assert claims["sub"] == "system:serviceaccount:monitoring:prometheus-esi-client"


def test_token_has_the_claim_layout_of_a_projected_service_account_token() -> None:
    issuer = sa_tokens.TokenIssuer()
    token = issuer.mint(
        "monitoring", "prometheus-esi-client", [AUDIENCE], pod_name="prom-0", now=1_700_000_000
    )
    claims = _segment(token, 1)
    assert sorted(claims) == ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["aud"] == [AUDIENCE]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1_700_000_000, 1_700_000_000, 1_700_000_600)
    bound = claims["kubernetes.io"]
    assert sorted(bound) == ["namespace", "node", "pod", "serviceaccount"]
    assert bound["namespace"] == "monitoring"
    assert bound["pod"]["name"] == "prom-0"
    assert bound["serviceaccount"]["name"] == "prometheus-esi-client"


def test_token_without_a_pod_carries_no_pod_or_node_binding() -> None:
    token = sa_tokens.TokenIssuer().mint("monitoring", "prometheus-esi-client", [AUDIENCE])
    assert sorted(_segment(token, 1)["kubernetes.io"]) == ["namespace", "serviceaccount"]


def test_header_holds_only_algorithm_and_kubernetes_key_id() -> None:
    issuer = sa_tokens.TokenIssuer()
    header = _segment(issuer.mint("ns", "sa", [AUDIENCE]), 0)
    der = issuer.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected_kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert header == {"alg": "RS256", "kid": expected_kid}


def test_header_member_set_to_none_is_left_out_and_others_are_added() -> None:
    issuer = sa_tokens.TokenIssuer()
    token = issuer.sign({"sub": "x"}, header={"kid": None, "jku": "https://attacker.invalid/jwks"})
    assert _segment(token, 0) == {"alg": "RS256", "jku": "https://attacker.invalid/jwks"}


def test_published_key_set_has_the_members_a_kubernetes_api_server_serves() -> None:
    issuer = sa_tokens.TokenIssuer(keys=[sa_tokens.generate_signing_key("ES256")])
    (jwk,) = issuer.jwks()["keys"]
    assert sorted(jwk) == ["alg", "crv", "kid", "kty", "use", "x", "y"]
    assert (jwk["kty"], jwk["crv"], jwk["use"]) == ("EC", "P-256", "sig")
    rsa_jwk = sa_tokens.TokenIssuer().jwks()["keys"][0]
    assert sorted(rsa_jwk) == ["alg", "e", "kid", "kty", "n", "use"]
    assert rsa_jwk["e"] == "AQAB"


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published() -> None:
    issuer = sa_tokens.TokenIssuer()
    old_kid = issuer.signing_key.kid
    old_token = issuer.mint("ns", "sa", [AUDIENCE])
    new_key = issuer.rotate()
    new_token = issuer.mint("ns", "sa", [AUDIENCE])
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert [key["kid"] for key in issuer.jwks()["keys"]] == [new_key.kid, old_kid]
    assert _verify(old_token, issuer)["sub"] == _verify(new_token, issuer)["sub"]


def test_a_removed_key_no_longer_appears_in_the_key_set() -> None:
    issuer = sa_tokens.TokenIssuer()
    old_kid = issuer.signing_key.kid
    issuer.rotate()
    issuer.remove_key(old_kid)
    assert old_kid not in {key["kid"] for key in issuer.jwks()["keys"]}


def test_the_last_key_cannot_be_removed() -> None:
    issuer = sa_tokens.TokenIssuer()
    with pytest.raises(sa_tokens.TokenError, match="last signing key"):
        issuer.remove_key(issuer.signing_key.kid)


def test_legacy_token_has_the_legacy_issuer_and_no_expiry() -> None:
    claims = _segment(sa_tokens.TokenIssuer().mint_legacy("monitoring", "prometheus-esi-client"), 1)
    assert claims["iss"] == sa_tokens.LEGACY_ISSUER
    assert "exp" not in claims
    assert claims["kubernetes.io/serviceaccount/namespace"] == "monitoring"


def test_a_deliberately_weak_rsa_key_signs_without_library_warnings() -> None:
    key = sa_tokens.generate_signing_key("RS256", rsa_bits=1024)
    token = sa_tokens.TokenIssuer(keys=[key]).mint("ns", "sa", [AUDIENCE])
    modulus = base64.urlsafe_b64decode(key.public_jwk()["n"] + "==")
    assert len(modulus) * 8 == 1024
    assert token.count(".") == 2


def test_a_signing_key_survives_a_round_trip_through_pem() -> None:
    key = sa_tokens.generate_signing_key("ES384")
    assert sa_tokens.load_signing_key(key.private_pem(), "ES384").kid == key.kid


def test_an_rsa_algorithm_with_an_ec_key_is_refused() -> None:
    pem = sa_tokens.generate_signing_key("ES256").private_pem()
    with pytest.raises(sa_tokens.TokenError, match="needs an RSA key"):
        sa_tokens.load_signing_key(pem, "RS256")


def test_an_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(sa_tokens.TokenError, match="unsupported algorithm"):
        sa_tokens.generate_signing_key("HS256")
