"""Signing keys and ServiceAccount tokens laid out exactly as a Kubernetes API server makes them.

A projected (audience-bound) ServiceAccount token of Kubernetes 1.30+ has this header and claims,
and ``TokenIssuer.mint`` produces the same layout::

    {"alg": "RS256", "kid": "<base64url(SHA-256(DER SubjectPublicKeyInfo))>"}
    {"aud": ["<audience>", ...], "exp": 1700000600, "iat": 1700000000, "nbf": 1700000000,
     "iss": "https://kubernetes.default.svc.cluster.local", "jti": "<uuid4>",
     "sub": "system:serviceaccount:<namespace>:<name>",
     "kubernetes.io": {"namespace": "<namespace>",
                       "node": {"name": "...", "uid": "..."},
                       "pod": {"name": "...", "uid": "..."},
                       "serviceaccount": {"name": "<name>", "uid": "..."}}}

The key set (``TokenIssuer.jwks``) and the discovery document have the shape that
``/openid/v1/jwks`` and ``/.well-known/openid-configuration`` of a real API server return.

Tokens are signed here with ``cryptography`` directly rather than with PyJWT, so that tests can make
any header (a missing ``kid``, ``crit``, ``jku``) and weak keys without library warnings, and so that
the server's PyJWT-based verification is checked against an independent implementation.
Nothing here does I/O; ``hack.client_issuer`` serves it over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
DEFAULT_LIFETIME_S = 600

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384"}
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TokenError(Exception):
    """A key or token cannot be made as asked (unknown algorithm, key of the wrong type, unknown kid)."""


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` Kubernetes gives a key: base64url of the SHA-256 of its DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


@dataclass(frozen=True)
class SigningKey:
    """A private key, the JOSE algorithm it signs with, and its ``kid``."""

    algorithm: str
    private_key: PrivateKey
    kid: str

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK, with the members and order a Kubernetes API server uses."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {
                "use": "sig",
                "kty": "RSA",
                "kid": self.kid,
                "alg": self.algorithm,
                "n": b64url(_int_bytes(numbers.n)),
                "e": b64url(_int_bytes(numbers.e)),
            }
        size = (public.curve.key_size + 7) // 8
        point = public.public_numbers()
        return {
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": _CURVE_NAMES[public.curve.name],
            "alg": self.algorithm,
            "x": b64url(point.x.to_bytes(size, "big")),
            "y": b64url(point.y.to_bytes(size, "big")),
        }

    def private_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM (for ``hack.client_issuer``'s state directory)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input`` (raw ``r || s`` for ECDSA, as JWS requires)."""
        digest = _HASHES[self.algorithm[2:]]()
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            der = self.private_key.sign(signing_input, ec.ECDSA(digest))
            r, s = decode_dss_signature(der)
            size = (self.private_key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if self.algorithm.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            return self.private_key.sign(signing_input, pss, digest)
        return self.private_key.sign(signing_input, padding.PKCS1v15(), digest)


def generate_signing_key(algorithm: str = "RS256", rsa_bits: int = 2048) -> SigningKey:
    """A fresh key for ``algorithm``. ``rsa_bits`` below 2048 makes a deliberately weak key for tests."""
    _check_algorithm(algorithm)
    private_key: PrivateKey
    if algorithm.startswith("ES"):
        private_key = ec.generate_private_key(_CURVES[algorithm])
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return SigningKey(algorithm, private_key, key_id(private_key.public_key()))


def load_signing_key(pem: bytes, algorithm: str) -> SigningKey:
    """Rebuild a signing key from PKCS#8 PEM, checking that the key type fits ``algorithm``."""
    _check_algorithm(algorithm)
    private_key = serialization.load_pem_private_key(pem, password=None)
    wanted = ec.EllipticCurvePrivateKey if algorithm.startswith("ES") else rsa.RSAPrivateKey
    if not isinstance(private_key, wanted):
        raise TokenError(
            f"{algorithm} needs an {'EC' if wanted is ec.EllipticCurvePrivateKey else 'RSA'} key"
        )
    return SigningKey(algorithm, private_key, key_id(private_key.public_key()))


@dataclass(frozen=True)
class PodIdentity:
    """Who a token is for: the ServiceAccount and the pod (and node) it is bound to."""

    namespace: str
    service_account: str
    pod_name: str = ""
    pod_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    service_account_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    node_name: str = "client-node-1"
    node_uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def subject(self) -> str:
        """``system:serviceaccount:<namespace>:<name>``."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


class TokenIssuer:
    """A client cluster's token signer: an issuer name and a key set, the first key signing.

    Thread-safe: the HTTPS server reads the key set while a test rotates keys.
    """

    def __init__(self, issuer: str = DEFAULT_ISSUER, keys: Sequence[SigningKey] | None = None) -> None:
        self.issuer = issuer
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = list(keys) if keys else [generate_signing_key()]

    @property
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with."""
        with self._lock:
            return self._keys[0]

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every published key, the signing key first."""
        with self._lock:
            return tuple(self._keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public key set, as ``/openid/v1/jwks`` returns it."""
        return {"keys": [key.public_jwk() for key in self.keys]}

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        """The OIDC discovery document, as ``/.well-known/openid-configuration`` returns it."""
        algorithms = sorted({key.algorithm for key in self.keys})
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
        }

    def add_key(self, key: SigningKey, sign_with: bool = False) -> None:
        """Publish ``key``; with ``sign_with`` it also signs new tokens from now on."""
        with self._lock:
            self._keys = [k for k in self._keys if k.kid != key.kid]
            self._keys.insert(0 if sign_with else len(self._keys), key)

    def rotate(self, algorithm: str | None = None) -> SigningKey:
        """Start signing with a new key while the old ones stay published, as a cluster rotation does."""
        key = generate_signing_key(algorithm or self.signing_key.algorithm)
        self.add_key(key, sign_with=True)
        return key

    def remove_key(self, kid: str) -> None:
        """Stop publishing the key ``kid``; tokens it signed no longer verify against this cluster."""
        with self._lock:
            remaining = [key for key in self._keys if key.kid != kid]
            if len(remaining) == len(self._keys):
                raise TokenError(f"no published key with kid {kid!r}")
            if not remaining:
                raise TokenError("the last signing key cannot be removed; add another first")
            self._keys = remaining

    def claims(
        self,
        identity: PodIdentity,
        audiences: Iterable[str],
        lifetime_s: int = DEFAULT_LIFETIME_S,
        now: int | None = None,
    ) -> dict[str, Any]:
        """The claims of a projected token for ``identity``; edit them and ``sign`` to make bad tokens."""
        issued_at = int(time.time()) if now is None else now
        bound: dict[str, Any] = {"namespace": identity.namespace}
        if identity.pod_name:
            bound["node"] = {"name": identity.node_name, "uid": identity.node_uid}
            bound["pod"] = {"name": identity.pod_name, "uid": identity.pod_uid}
        bound["serviceaccount"] = {"name": identity.service_account, "uid": identity.service_account_uid}
        return {
            "aud": list(audiences),
            "exp": issued_at + lifetime_s,
            "iat": issued_at,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": bound,
            "nbf": issued_at,
            "sub": identity.subject,
        }

    def mint(
        self,
        namespace: str,
        service_account: str,
        audiences: Iterable[str],
        *,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        pod_name: str = "",
        pod_uid: str | None = None,
        now: int | None = None,
    ) -> str:
        """A projected ServiceAccount token, signed with the current signing key (``pod_uid``: random
        when not given)."""
        identity = PodIdentity(namespace, service_account, pod_name=pod_name)
        if pod_uid is not None:
            identity = replace(identity, pod_uid=pod_uid)
        return self.sign(self.claims(identity, audiences, lifetime_s, now))

    def mint_legacy(self, namespace: str, service_account: str, secret_name: str | None = None) -> str:
        """An old Secret-based token (``iss: kubernetes/serviceaccount``, no ``exp``): to be refused."""
        prefix = "kubernetes.io/serviceaccount/"
        claims = {
            "iss": LEGACY_ISSUER,
            prefix + "namespace": namespace,
            prefix + "secret.name": secret_name or f"{service_account}-token-x7k2p",
            prefix + "service-account.name": service_account,
            prefix + "service-account.uid": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }
        return self.sign(claims)

    def sign(
        self,
        claims: Mapping[str, Any],
        key: SigningKey | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign any ``claims`` as a compact JWS.

        The header is ``{"alg", "kid"}`` of ``key`` (default: the signing key), updated with ``header``;
        a member set to None is removed, so ``header={"kid": None}`` makes a token without a ``kid``.
        """
        signer = key or self.signing_key
        members: dict[str, Any] = {"alg": signer.algorithm, "kid": signer.kid}
        members.update(header or {})
        members = {name: value for name, value in members.items() if value is not None}
        signing_input = f"{_encode_json(members)}.{_encode_json(claims)}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{b64url(signer.sign(signing_input))}"


def _encode_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise TokenError(f"unsupported algorithm {algorithm!r}; use one of {', '.join(SUPPORTED_ALGORITHMS)}")
