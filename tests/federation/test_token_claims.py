"""The pure token checks of tokens.py: header, issuer lookup, candidates, each claim's validator."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from federation.config.model import Federation
from federation.errors import Unauthorized
from federation.settings import Settings
from federation.tokens import (
    Hints,
    certificate_ders,
    check_audience,
    check_issuer,
    check_subject,
    check_times,
    parse_compact,
    read_header,
    read_unverified_issuer,
    select_candidates,
    validate_claims,
)
from hack.certs import create_ca
from hack.sa_tokens import PodIdentity, TokenIssuer
from tests.federation.helpers_requests import hand_made_token

NOW = 1_800_000_000.0
ISSUER = "https://kubernetes.default.svc.cluster.local"
SUB = "system:serviceaccount:monitoring:prometheus-esi-client"


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """Expect an ``Unauthorized`` whose logged reason contains ``reason``."""
    with pytest.raises(Unauthorized) as caught:
        yield
    assert reason in caught.value.reason


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ["esi-federation"],
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 590,
        "sub": SUB,
        "kubernetes.io": {
            "namespace": "monitoring",
            "pod": {"name": "prometheus-0", "uid": "u1"},
            "serviceaccount": {"name": "prometheus-esi-client", "uid": "u2"},
        },
    }
    claims.update(changes)
    return claims


def _federation(name: str = "alpha", issuer: str = ISSUER, ca_bundle: str | None = None) -> Federation:
    return Federation(name=name, url=f"https://{name}.example", issuer=issuer, ca_bundle=ca_bundle)


# -- header ------------------------------------------------------------------------------------------


def test_read_header_accepts_an_allowed_algorithm_with_a_kid() -> None:
    token = hand_made_token({"alg": "RS256", "kid": "k1"}, {})
    header = read_header(parse_compact(token))
    assert (header.alg, header.kid) == ("RS256", "k1")


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "HS512", "PS384", "ES512", "EdDSA", None, 7])
def test_read_header_refuses_an_algorithm_outside_the_list(alg: Any) -> None:
    with refused("algorithm"):
        read_header(parse_compact(hand_made_token({"alg": alg, "kid": "k1"}, {})))


@pytest.mark.parametrize("kid", [None, "", 5, ["k1"]])
def test_read_header_requires_a_kid(kid: Any) -> None:
    header = {"alg": "RS256"} if kid is None else {"alg": "RS256", "kid": kid}
    with refused("kid" if kid in (None, "") else ""):
        read_header(parse_compact(hand_made_token(header, {})))


def test_read_header_refuses_crit() -> None:
    for crit in ([], ["exp"], ["b64"], "exp"):
        with refused(""):
            read_header(parse_compact(hand_made_token({"alg": "RS256", "kid": "k1", "crit": crit}, {})))


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
def test_read_header_ignores_key_location_members(member: str) -> None:
    token = hand_made_token({"alg": "RS256", "kid": "k1", member: "https://attacker.example/keys"}, {})
    assert read_header(parse_compact(token)).kid == "k1"


def test_read_header_refuses_a_token_over_16_kib() -> None:
    with refused("longer"):
        read_header(parse_compact(hand_made_token({"alg": "RS256", "kid": "k1"}, {"pad": "x" * 16 * 1024})))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9"])
def test_read_header_refuses_garbage(token: str) -> None:
    with pytest.raises(Unauthorized):
        read_header(parse_compact(token))


# -- issuer lookup and candidates --------------------------------------------------------------------


def test_read_unverified_issuer_returns_iss() -> None:
    assert read_unverified_issuer(parse_compact(hand_made_token({"alg": "RS256"}, {"iss": ISSUER}))) == ISSUER


@pytest.mark.parametrize("claims", [{}, {"iss": ""}, {"iss": 5}, {"iss": "kubernetes/serviceaccount"}])
def test_read_unverified_issuer_refuses_missing_or_legacy_issuers(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        read_unverified_issuer(parse_compact(hand_made_token({"alg": "RS256"}, claims)))


def test_a_real_legacy_token_is_refused_at_issuer_lookup() -> None:
    legacy = TokenIssuer().mint_legacy("monitoring", "prometheus-esi-client")
    with refused("legacy"):
        read_unverified_issuer(parse_compact(legacy))


def test_candidates_are_the_federations_of_the_issuer() -> None:
    feds = [_federation("a"), _federation("b"), _federation("c", issuer="https://other")]
    assert [f.name for f in select_candidates(feds, ISSUER, Hints())] == ["a", "b"]
    assert select_candidates(feds, "https://unknown", Hints()) == []


def test_the_cluster_hint_narrows_and_never_widens() -> None:
    feds = [_federation("a"), _federation("c", issuer="https://other")]
    assert [f.name for f in select_candidates(feds, ISSUER, Hints(cluster="a"))] == ["a"]
    assert select_candidates(feds, ISSUER, Hints(cluster="c")) == []


def test_the_ca_hint_selects_the_federation_whose_bundle_holds_it() -> None:
    ca_a, ca_b = create_ca("a").cert_pem.decode(), create_ca("b").cert_pem.decode()
    feds = [_federation("a", ca_bundle=ca_a), _federation("b", ca_bundle=ca_b + ca_a)]
    assert [f.name for f in select_candidates(feds, ISSUER, Hints(ca_cert=ca_b))] == ["b"]
    both = select_candidates(feds, ISSUER, Hints(ca_cert=ca_a))
    assert [f.name for f in both] == ["a", "b"]


def test_an_unknown_ca_hint_narrows_nothing_and_trusts_nothing() -> None:
    feds = [_federation("a", ca_bundle=create_ca("a").cert_pem.decode()), _federation("b")]
    stranger = create_ca("stranger").cert_pem.decode()
    assert [f.name for f in select_candidates(feds, ISSUER, Hints(ca_cert=stranger))] == ["a", "b"]


def test_certificate_ders_reads_pem_and_base64_pem_and_ignores_garbage() -> None:
    pem = create_ca("x").cert_pem.decode()
    assert len(certificate_ders(pem)) == 1
    assert certificate_ders(base64.b64encode(pem.encode()).decode()) == certificate_ders(pem)
    assert certificate_ders("not a certificate") == frozenset()


# -- claims ------------------------------------------------------------------------------------------


def test_check_issuer_is_exact() -> None:
    check_issuer(_claims(), _federation())
    for iss in (ISSUER + "/", ISSUER.upper(), None):
        with pytest.raises(Unauthorized):
            check_issuer(_claims(iss=iss), _federation())


@pytest.mark.parametrize(
    ("aud", "strict", "accepted"),
    [
        (["esi-federation"], True, True),
        ("esi-federation", True, True),
        (["esi-federation", "other"], True, False),
        (["esi-federation", "other"], False, True),
        (["other"], False, False),
        ([], False, False),
        (None, False, False),
        ([5], False, False),
        ({"esi-federation": 1}, False, False),
    ],
)
def test_check_audience(aud: Any, strict: bool, accepted: bool) -> None:
    claims = _claims(aud=aud)
    if accepted:
        check_audience(claims, ["esi-federation"], strict=strict)
    else:
        with pytest.raises(Unauthorized):
            check_audience(claims, ["esi-federation"], strict=strict)


def test_check_times_accepts_a_fresh_token_and_honours_the_leeway() -> None:
    check_times(_claims(), NOW, 60, 3600)
    check_times(_claims(exp=NOW - 59), NOW, 60, 3600)
    check_times(_claims(nbf=NOW + 59), NOW, 60, 3600)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": NOW - 61}, "expired"),
        ({"nbf": NOW + 61}, "nbf"),
        ({"iat": NOW + 61, "exp": NOW + 600}, "future"),
        ({"iat": NOW - 10, "exp": NOW + 3600}, "longer"),
        ({"exp": None}, "required"),
        ({"iat": None}, "required"),
        ({"exp": "1800000600"}, "required"),
        ({"exp": True}, "required"),
        ({"nbf": "soon"}, "nbf"),
        ({"exp": math.nan}, "required"),
        ({"iat": math.nan, "exp": NOW + 10 * 365 * 86400}, "required"),
        ({"exp": math.inf}, "required"),
        ({"iat": -math.inf}, "required"),
        ({"nbf": math.nan}, "nbf"),
        ({"exp": 10**400}, "required"),
        ({"iat": -(10**400)}, "required"),
        ({"nbf": 10**400}, "nbf"),
        ({"exp": 1e300}, "required"),
    ],
)
def test_check_times_refuses(changes: dict[str, Any], reason: str) -> None:
    claims = {k: v for k, v in {**_claims(), **changes}.items() if v is not None}
    with refused(reason):
        check_times(claims, NOW, 60, 3600)


def test_check_subject_returns_namespace_and_name() -> None:
    assert check_subject(_claims()) == ("monitoring", "prometheus-esi-client")


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "system:serviceaccount:monitoring"},
        {"sub": "system:serviceaccount:monitoring:a:b"},
        {"sub": "user:alice"},
        {"sub": None},
        {"kubernetes.io": None},
        {"kubernetes.io": {"namespace": "monitoring"}},
        {"kubernetes.io": {"namespace": "kube-system", "serviceaccount": {"name": "prometheus-esi-client"}}},
        {"kubernetes.io": {"namespace": "monitoring", "serviceaccount": {"name": "grafana"}}},
        {"kubernetes.io": {"namespace": "monitoring", "serviceaccount": "prometheus-esi-client"}},
    ],
)
def test_check_subject_refuses_subjects_that_disagree(changes: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        check_subject({k: v for k, v in {**_claims(), **changes}.items() if v is not None})


def test_validate_claims_builds_the_identity_from_a_real_token_layout() -> None:
    claims = TokenIssuer().claims(
        PodIdentity("monitoring", "prometheus-esi-client", "prometheus-0"), ["esi-federation"]
    )
    identity = validate_claims(claims, _federation(), Settings(), float(claims["iat"]))
    assert identity.federation == "alpha"
    assert identity.subject == SUB
    assert (identity.namespace, identity.service_account, identity.pod_name) == (
        "monitoring",
        "prometheus-esi-client",
        "prometheus-0",
    )


def test_validate_claims_uses_the_federation_audiences_over_the_server_audience() -> None:
    federation = Federation(name="a", url="https://a.example", audiences=("cluster-main",))
    with pytest.raises(Unauthorized):
        validate_claims(_claims(), federation, Settings(), NOW)
    validate_claims(_claims(aud=["cluster-main"]), federation, Settings(), NOW)


def test_validate_claims_accepts_extra_audiences_only_when_configured() -> None:
    claims = _claims(aud=["esi-federation", "vault"])
    with pytest.raises(Unauthorized):
        validate_claims(claims, _federation(), Settings(), NOW)
    validate_claims(claims, _federation(), Settings(allow_extra_audiences=True), NOW)
