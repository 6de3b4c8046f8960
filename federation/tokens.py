"""ServiceAccount JWT -> verified ``Identity``: the security core (README.md, "Security model").

Order: size cap and one decoding of the compact JWS; header (algorithm list, ``kid`` required, ``crit``
refused); issuer read unverified for lookup only; candidate federations (hints narrow, never trust);
signature per candidate with that federation's own keys; then one validator per claim. Every failure is
an ``Unauthorized`` whose reason is logged; callers all see the same body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeGuard

from jwt.algorithms import Algorithm, ECAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from federation.config.model import Configuration, Federation
from federation.errors import JwksUnavailable, Unauthorized
from federation.settings import Settings

MAX_TOKEN_BYTES = 16 * 1024
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
LEGACY_ISSUER = "kubernetes/serviceaccount"
# Time claims beyond 2**53 s (JSON's exact integers; 285 million years) are refused as malformed.
MAX_TIME_CLAIM = 2**53
SUBJECT = re.compile(r"^system:serviceaccount:(?P<namespace>[^:]+):(?P<name>[^:]+)$")
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
# Signature checks only: the token is split and decoded once here, not once per PyJWT call.
SIGNATURE_VERIFIERS: dict[str, Algorithm] = {
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
    "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
    "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "ES384": ECAlgorithm(ECAlgorithm.SHA384),
}


@dataclass(frozen=True)
class Identity:
    """Who a verified token belongs to."""

    federation: str
    issuer: str
    subject: str
    namespace: str
    service_account: str
    pod_name: str | None
    expires_at: float | None = None
    pod_uid: str | None = None


@dataclass(frozen=True)
class Hints:
    """Optional selectors sent by the client: they narrow the candidates, they never grant trust."""

    cluster: str | None = None
    ca_cert: str | None = None


@dataclass(frozen=True)
class CompactJws:
    """A token split and decoded once: header, claims, and what the signature covers."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class _Header:
    alg: str
    kid: str


class SigningKey(Protocol):
    """A public key of one federation and the algorithms it may verify."""

    @property
    def public_key(self) -> Any:
        """The key, as ``jwt.algorithms`` verifies with it."""

    @property
    def algorithms(self) -> frozenset[str]:
        """The ``alg`` values this key may verify."""


class KeySource(Protocol):
    """Where the verifier gets keys from; fetching and caching them is the source's business."""

    def key(self, config: Configuration, federation: Federation, kid: str) -> SigningKey | None:
        """The key ``kid`` of ``federation`` in ``config``, or None; ``JwksUnavailable`` when unknown."""


class VerifiedSignatures:
    """Signatures already checked, by the digest of what was signed and the signature.

    A signature check is a pure function of (signed bytes, signature, algorithm, key), and an RSA check
    costs more than the rest of a token's checks together. Remembering a success lets a token sent again
    (esi-cli's retries after a 429, the esi-refresh sidecar's polls with its pod's token) skip only that
    check: the entry holds the very key object it verified with and matches only that object, so a key
    that is rotated out, or a configuration that no longer names it, verifies nothing. Every other check
    (issuer, audience, times, subject, federation, TokenReview) runs for every request. Failures are not
    kept. No token is kept either: only a SHA-256 digest of it.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._verified: dict[bytes, tuple[str, SigningKey]] = {}
        self._lock = threading.Lock()

    def verify(self, alg: str, jws: CompactJws, key: SigningKey) -> bool:
        """True when ``jws``'s signature verifies with ``key`` for ``alg``."""
        # Length-prefixed, so that no other split of the same bytes into input and signature matches.
        signed = jws.signing_input
        digest = hashlib.sha256(len(signed).to_bytes(4, "big") + signed + jws.signature).digest()
        known = self._verified.get(digest)
        if known is not None and known[0] == alg and known[1] is key:
            return True
        if not SIGNATURE_VERIFIERS[alg].verify(jws.signing_input, key.public_key, jws.signature):
            return False
        with self._lock:
            if len(self._verified) >= self._capacity:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[digest] = (alg, key)
        return True


class TokenVerifier:
    """Verifies tokens against the federations of one configuration snapshot."""

    def __init__(self, settings: Settings, keys: KeySource, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._keys = keys
        self._clock = clock
        self._signatures = VerifiedSignatures()

    def verify(self, jws: CompactJws, config: Configuration, hints: Hints) -> Identity:
        """Return the identity of the token ``jws``; raise ``Unauthorized`` (or ``JwksUnavailable``)."""
        header = read_header(jws)
        issuer = read_unverified_issuer(jws)
        candidates = select_candidates(config.federations.values(), issuer, hints)
        if not candidates:
            raise Unauthorized(f"no KubernetesFederation matches issuer {issuer!r} and the hints")
        verified: list[Federation] = []
        failures: list[str] = []
        unavailable: JwksUnavailable | None = None
        for federation in candidates:
            try:
                self._verify_signature(jws, header, config, federation)
            except JwksUnavailable as exc:
                unavailable = exc
                continue
            except Unauthorized as exc:
                failures.append(f"{federation.name}: {exc.reason}")
                continue
            verified.append(federation)
        if len(verified) > 1:
            raise Unauthorized("the token verifies with the keys of several federations")
        if not verified:
            if unavailable is not None:
                raise unavailable
            raise Unauthorized("; ".join(failures))
        return validate_claims(jws.claims, verified[0], self._settings, self._clock())

    def _verify_signature(
        self, jws: CompactJws, header: _Header, config: Configuration, federation: Federation
    ) -> None:
        key = self._keys.key(config, federation, header.kid)
        if key is None:
            raise Unauthorized(f"unknown kid {header.kid!r}")
        if header.alg not in key.algorithms:
            raise Unauthorized(f"algorithm {header.alg} does not match key {header.kid!r}")
        if not self._signatures.verify(header.alg, jws, key):
            raise Unauthorized("the signature does not verify")


def parse_compact(token: str) -> CompactJws:
    """Split a compact JWS and decode its parts; ``Unauthorized`` for anything malformed or over 16 KiB."""
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized(f"token longer than {MAX_TOKEN_BYTES} bytes")
    segments = token.split(".")
    if len(segments) != 3 or not all(_BASE64URL.match(segment) for segment in segments):
        raise Unauthorized("the token is not a compact JWS of three base64url segments")
    header, claims, signature = (_decode_segment(segment) for segment in segments)
    return CompactJws(
        _json_object(header, "header"),
        _json_object(claims, "payload"),
        f"{segments[0]}.{segments[1]}".encode("ascii"),
        signature,
    )


def _decode_segment(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Unauthorized("a token segment is not valid base64url") from None


def _json_object(raw: bytes, part: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized(f"the token {part} is not JSON") from None
    except RecursionError:
        raise Unauthorized(f"the token {part} is nested too deeply") from None
    if not isinstance(value, dict):
        raise Unauthorized(f"the token {part} is not a JSON object")
    return value


def read_header(jws: CompactJws) -> _Header:
    """Check the header: ``alg`` in the allowed list, ``kid`` present, no ``crit``."""
    header = jws.header
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise Unauthorized(f"algorithm {alg!r} is not allowed")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("the token header has no kid")
    if "crit" in header:
        raise Unauthorized("the token header has a crit parameter")
    return _Header(alg, kid)


def read_unverified_issuer(jws: CompactJws) -> str:
    """The ``iss`` claim, read without verification: used only to look up candidate federations."""
    issuer = jws.claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise Unauthorized("the token has no iss claim")
    if issuer == LEGACY_ISSUER:
        raise Unauthorized("legacy (secret-based) ServiceAccount tokens are refused")
    return issuer


def select_candidates(federations: Iterable[Federation], issuer: str, hints: Hints) -> list[Federation]:
    """Federations whose issuer is ``issuer``, narrowed by the hints.

    ``cluster`` must name one of them. ``caCert`` keeps the federations whose caBundle holds that
    certificate; when none does, it narrows nothing (a federation may trust the system store).
    """
    candidates = [f for f in federations if f.issuer == issuer]
    if hints.cluster is not None:
        candidates = [f for f in candidates if f.name == hints.cluster]
    # The hint is parsed only when it can decide something: with one candidate it narrows nothing.
    sent = certificate_ders(hints.ca_cert) if hints.ca_cert and len(candidates) > 1 else frozenset()
    if sent:
        matching = [f for f in candidates if f.ca_bundle and certificate_ders(f.ca_bundle) & sent]
        candidates = matching or candidates
    return candidates


@lru_cache(maxsize=256)
def certificate_ders(pem_or_base64: str) -> frozenset[bytes]:
    """The DER bytes of every certificate in a PEM bundle, or in the base64 of one."""
    text = pem_or_base64
    if "-----BEGIN" not in text:
        try:
            text = base64.b64decode(text, validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            return frozenset()
    ders = set()
    for block in _pem_blocks(text):
        try:
            ders.add(ssl.PEM_cert_to_DER_cert(block))
        except ValueError:
            continue
    return frozenset(ders)


def _pem_blocks(text: str) -> list[str]:
    """Each BEGIN..END certificate block, found in one forward pass (a regex search restarted at every
    BEGIN marker made a body of repeated markers cost quadratic time)."""
    blocks = []
    position = 0
    while (start := text.find(_PEM_BEGIN, position)) >= 0:
        end = text.find(_PEM_END, start)
        if end < 0:
            break
        position = end + len(_PEM_END)
        blocks.append(text[start:position])
    return blocks


def validate_claims(
    claims: Mapping[str, Any], federation: Federation, settings: Settings, now: float
) -> Identity:
    """Run every claim validator; return the identity when all pass."""
    check_issuer(claims, federation)
    check_audience(
        claims, federation.audiences or (settings.audience,), strict=not settings.allow_extra_audiences
    )
    check_times(claims, now, settings.token_leeway, settings.max_token_lifetime)
    namespace, name = check_subject(claims)
    pod = claims["kubernetes.io"].get("pod")
    pod_name = pod.get("name") if isinstance(pod, dict) and isinstance(pod.get("name"), str) else None
    pod_uid = pod.get("uid") if isinstance(pod, dict) and isinstance(pod.get("uid"), str) else None
    return Identity(
        federation.name,
        federation.issuer,
        claims["sub"],
        namespace,
        name,
        pod_name,
        float(claims["exp"]),
        # A generated credential is bound to the pod only when both are known.
        pod_uid if pod_name else None,
    )


def check_issuer(claims: Mapping[str, Any], federation: Federation) -> None:
    """``iss`` equals the federation's issuer exactly."""
    if claims.get("iss") != federation.issuer:
        raise Unauthorized("iss does not match the federation's issuer")


def check_audience(claims: Mapping[str, Any], accepted: Iterable[str], *, strict: bool) -> None:
    """``aud`` holds an accepted audience and, when strict, nothing else."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
        raise Unauthorized("aud is missing or malformed")
    allowed = set(accepted)
    if not allowed & set(audiences):
        raise Unauthorized("aud does not contain an accepted audience")
    if strict and not set(audiences) <= allowed:
        raise Unauthorized("aud contains audiences that are not accepted")


def check_times(claims: Mapping[str, Any], now: float, leeway: float, max_lifetime: float) -> None:
    """``exp`` and ``iat`` required, ``nbf`` honoured, all with leeway; ``exp - iat`` capped."""
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not _is_number(exp) or not _is_number(iat):
        raise Unauthorized("exp and iat are required numbers")
    if nbf is not None and not _is_number(nbf):
        raise Unauthorized("nbf is not a number")
    if now > exp + leeway:
        raise Unauthorized("the token has expired")
    if iat > now + leeway:
        raise Unauthorized("iat is in the future")
    if nbf is not None and nbf > now + leeway:
        raise Unauthorized("the token is not valid yet (nbf)")
    if exp - iat > max_lifetime:
        raise Unauthorized(f"the token lives {exp - iat:.0f} s, longer than {max_lifetime:.0f} s")


def check_subject(claims: Mapping[str, Any]) -> tuple[str, str]:
    """``sub`` is ``system:serviceaccount:<ns>:<name>`` and agrees with the ``kubernetes.io`` claims."""
    sub = claims.get("sub")
    match = SUBJECT.match(sub) if isinstance(sub, str) else None
    if match is None:
        raise Unauthorized("sub is not a ServiceAccount subject")
    info = claims.get("kubernetes.io")
    account = info.get("serviceaccount") if isinstance(info, dict) else None
    if (
        not isinstance(info, dict)
        or not isinstance(account, dict)
        or info.get("namespace") != match["namespace"]
        or account.get("name") != match["name"]
    ):
        raise Unauthorized("sub does not match the kubernetes.io claims")
    return match["namespace"], match["name"]


def _is_number(value: object) -> TypeGuard[float]:
    # JSON parsers accept NaN and Infinity; NaN compares false with everything and would pass each check.
    # A 400-digit integer is valid JSON too, but overflows as soon as it meets a float: bounded first.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return -MAX_TIME_CLAIM <= value <= MAX_TIME_CLAIM
    return math.isfinite(value) and -MAX_TIME_CLAIM <= value <= MAX_TIME_CLAIM
