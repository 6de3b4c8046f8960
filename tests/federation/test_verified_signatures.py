"""tokens.VerifiedSignatures: a signature checked once per (token, key object); nothing else is skipped."""

from __future__ import annotations

from typing import Any

import pytest

from federation import tokens
from federation.keyset import parse_jwks
from federation.tokens import VerifiedSignatures, parse_compact
from hack.sa_tokens import TokenIssuer, generate_signing_key


class CountingAlgorithm:
    """Wraps the real RS256 check and counts how often it runs."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.checks = 0

    def verify(self, signing_input: bytes, key: Any, signature: bytes) -> bool:
        self.checks += 1
        return bool(self.real.verify(signing_input, key, signature))


@pytest.fixture
def rs256(monkeypatch: pytest.MonkeyPatch) -> CountingAlgorithm:
    counting = CountingAlgorithm(tokens.SIGNATURE_VERIFIERS["RS256"])
    monkeypatch.setitem(tokens.SIGNATURE_VERIFIERS, "RS256", counting)
    return counting


ISSUER = TokenIssuer(keys=[generate_signing_key("RS256")])


def _key() -> Any:
    (key,) = parse_jwks(ISSUER.jwks()).values()
    return key


def test_a_token_sent_again_with_the_same_key_is_checked_once(rs256: CountingAlgorithm) -> None:
    signatures, key = VerifiedSignatures(), _key()
    jws = parse_compact(ISSUER.mint("monitoring", "prometheus", ["esi-federation"]))
    assert [signatures.verify("RS256", jws, key) for _ in range(3)] == [True, True, True]
    assert rs256.checks == 1


def test_another_key_object_is_checked_again_even_with_the_same_public_key(rs256: CountingAlgorithm) -> None:
    signatures = VerifiedSignatures()
    jws = parse_compact(ISSUER.mint("monitoring", "prometheus", ["esi-federation"]))
    assert signatures.verify("RS256", jws, _key())
    assert signatures.verify("RS256", jws, _key())  # a refreshed JWKS: new objects
    assert rs256.checks == 2


def test_a_rotated_key_does_not_inherit_the_old_keys_successes(rs256: CountingAlgorithm) -> None:
    signatures = VerifiedSignatures()
    jws = parse_compact(ISSUER.mint("monitoring", "prometheus", ["esi-federation"]))
    assert signatures.verify("RS256", jws, _key())
    other = TokenIssuer(keys=[generate_signing_key("RS256")])
    (rotated,) = parse_jwks(other.jwks()).values()
    assert not signatures.verify("RS256", jws, rotated)
    assert not signatures.verify("RS256", jws, rotated)
    assert rs256.checks == 3  # failures are never remembered


def test_a_forged_signature_is_refused_every_time(rs256: CountingAlgorithm) -> None:
    signatures, key = VerifiedSignatures(), _key()
    header, claims, _ = ISSUER.mint("monitoring", "prometheus", ["esi-federation"]).split(".")
    genuine = parse_compact(ISSUER.mint("monitoring", "prometheus", ["esi-federation"]))
    assert signatures.verify("RS256", genuine, key)
    forged = parse_compact(f"{header}.{claims}.{genuine.signature.hex()[:40]}")
    assert not signatures.verify("RS256", forged, key)
    assert not signatures.verify("RS256", forged, key)
    assert rs256.checks == 3


def test_the_oldest_success_is_dropped_beyond_the_capacity(rs256: CountingAlgorithm) -> None:
    signatures, key = VerifiedSignatures(capacity=2), _key()
    first, second, third = (
        parse_compact(ISSUER.mint("monitoring", f"sa-{n}", ["esi-federation"])) for n in range(3)
    )
    for jws in (first, second, third, third, second):
        assert signatures.verify("RS256", jws, key)
    assert rs256.checks == 3
    assert signatures.verify("RS256", first, key)
    assert rs256.checks == 4


def test_the_same_bytes_split_otherwise_between_input_and_signature_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class OnlyOnePair:
        checks = 0

        def verify(self, signing_input: bytes, key: Any, signature: bytes) -> bool:
            self.checks += 1
            return (signing_input, signature) == (b"aaa.bbb", b"c.ddd")

    algorithm = OnlyOnePair()
    monkeypatch.setitem(tokens.SIGNATURE_VERIFIERS, "RS256", algorithm)
    signatures, key = VerifiedSignatures(), _key()
    genuine = tokens.CompactJws({}, {}, b"aaa.bbb", b"c.ddd")
    shifted = tokens.CompactJws({}, {}, b"aaa.bbb.c", b"ddd")
    assert signatures.verify("RS256", genuine, key)
    assert not signatures.verify("RS256", shifted, key)
    assert algorithm.checks == 2
