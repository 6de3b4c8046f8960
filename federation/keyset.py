"""A JWKS document -> the signing keys it holds, each with the algorithms it may verify. Pure: no I/O.

Fetching and caching key sets is ``federation.jwks``; ``esi-federation check`` parses a static JWKS
with the same rules as serving does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

log = logging.getLogger(__name__)

MAX_KEYS = 50
MIN_RSA_BITS = 2048
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256"})
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384"}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384"}


class JwksError(Exception):
    """A JWKS could not be fetched or parsed; the message is safe to log."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key of one federation, with the algorithms it may verify."""

    kid: str
    thumbprint: str
    public_key: Any
    algorithms: frozenset[str]


def thumbprint(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of a public key, computed from its numbers.

    Not from the JWK's text: the same RSA modulus written with a leading zero byte, or an EC coordinate
    without its leading zeros, is still the same key, and must be seen as shared.
    """
    members: dict[str, str]
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        members = {"e": _b64_int(rsa_numbers.e), "kty": "RSA", "n": _b64_int(rsa_numbers.n)}
    else:
        ec_numbers = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        members = {
            "crv": _CURVE_NAMES[public_key.curve.name],
            "kty": "EC",
            "x": _b64(ec_numbers.x.to_bytes(size, "big")),
            "y": _b64(ec_numbers.y.to_bytes(size, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_jwks(document: Any) -> dict[str, VerificationKey]:
    """Usable signing keys of a JWKS document by ``kid``; unusable keys are skipped and logged."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('the JWKS is not an object {"keys": [...]}')
    if len(document["keys"]) > MAX_KEYS:
        raise JwksError(f"the JWKS holds {len(document['keys'])} keys, more than {MAX_KEYS}")
    keys: dict[str, VerificationKey] = {}
    for jwk in document["keys"]:
        try:
            key = _verification_key(jwk)
        except (JwksError, InvalidKeyError, KeyError, ValueError, TypeError) as exc:
            log.warning("skipping a JWKS key", extra={"reason": str(exc)})
            continue
        keys[key.kid] = key
    return keys


def _verification_key(jwk: Any) -> VerificationKey:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        raise JwksError("key without a kid")
    if jwk.get("use", "sig") != "sig":
        raise JwksError(f"key {jwk['kid']!r} is not a signing key")
    kty = jwk.get("kty")
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if kty == "RSA":
        rsa_key = RSAAlgorithm.from_jwk(jwk)
        if not isinstance(rsa_key, rsa.RSAPublicKey) or rsa_key.key_size < MIN_RSA_BITS:
            raise JwksError(f"key {jwk['kid']!r}: RSA keys must be public and at least {MIN_RSA_BITS} bits")
        public_key, allowed = rsa_key, RSA_ALGORITHMS
    elif kty == "EC" and jwk.get("crv") in EC_ALGORITHMS:
        ec_key = ECAlgorithm.from_jwk(jwk)
        if not isinstance(ec_key, ec.EllipticCurvePublicKey):
            raise JwksError(f"key {jwk['kid']!r} is not a public key")
        public_key, allowed = ec_key, frozenset({EC_ALGORITHMS[jwk["crv"]]})
    else:
        raise JwksError(f"key {jwk['kid']!r}: unsupported key type {kty!r}")
    if "alg" in jwk:
        if jwk["alg"] not in allowed:
            raise JwksError(f"key {jwk['kid']!r}: algorithm {jwk['alg']!r} is not allowed for {kty}")
        allowed = frozenset({jwk["alg"]})
    return VerificationKey(jwk["kid"], thumbprint(public_key), public_key, allowed)
