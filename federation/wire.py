"""The ``/v1/secrets`` request body: decoded and checked here, so the service sees only valid input."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from federation.authz import RequestedItem
from federation.errors import BadRequest
from federation.generators.model import GeneratorRef
from federation.tokens import Hints
from serving import fastjson

MAX_ITEMS = 100
MAX_KEY_LENGTH = 1024
MAX_PROPERTY_LENGTH = 256
MAX_CA_CERT_LENGTH = 32 * 1024
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
ALLOWED_FIELDS = frozenset({"cluster", "caCert", "secrets"})
ALLOWED_ITEM_FIELDS = frozenset({"store", "key", "property"})
# Fields of ESO's remote references that an item does not take: each refusal says what is read instead.
ESO_REFERENCE_FIELDS = {
    "version": "the latest version of the key is read",
    "metadataPolicy": "only a secret's data is served, never its metadata",
    "decodingStrategy": "values are served as stored",
    "conversionStrategy": "values are served as stored",
}
ALLOWED_GENERATOR_ITEM_FIELDS = frozenset({"generator", "property"})


@dataclass(frozen=True)
class SecretsRequest:
    """A valid ``/v1/secrets`` body."""

    hints: Hints
    items: tuple[RequestedItem, ...]


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; ``BadRequest`` when it is not JSON."""
    try:
        return fastjson.loads(body)
    except fastjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def hints_of(document: Any) -> Hints:
    """The selectors in a body, read leniently: a malformed hint is ignored here and refused later."""
    if not isinstance(document, dict):
        return Hints()
    cluster = document.get("cluster")
    return Hints(cluster if _is_name(cluster) else None, ca_cert_hint(document.get("caCert")))


def ca_cert_hint(value: Any) -> str | None:
    """A ``caCert`` (or the compatibility route's ``ca.crt``) hint: a string within the one size cap."""
    return value if isinstance(value, str) and len(value) <= MAX_CA_CERT_LENGTH else None


def parse_secrets_request(document: Any) -> SecretsRequest:
    """Check the shape of a decoded body; every problem names the field."""
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(document) - ALLOWED_FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    cluster = document.get("cluster")
    if cluster is not None and not _is_name(cluster):
        raise BadRequest("cluster must be a DNS-1123 name")
    ca_cert = document.get("caCert")
    if ca_cert is not None and (not isinstance(ca_cert, str) or len(ca_cert) > MAX_CA_CERT_LENGTH):
        raise BadRequest(f"caCert must be a PEM (or base64 PEM) string of at most {MAX_CA_CERT_LENGTH} bytes")
    secrets = document.get("secrets")
    if not isinstance(secrets, list) or not secrets:
        raise BadRequest("secrets must be a non-empty list")
    if len(secrets) > MAX_ITEMS:
        raise BadRequest(f"secrets holds {len(secrets)} items; the maximum is {MAX_ITEMS}")
    items = tuple(_item(index, entry) for index, entry in enumerate(secrets))
    return SecretsRequest(Hints(cluster, ca_cert), items)


def _item(index: int, entry: Any) -> RequestedItem:
    where = f"secrets[{index}]"
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be an object")
    if "generator" in entry:
        return _generator_item(where, entry)
    unknown = sorted(set(entry) - ALLOWED_ITEM_FIELDS)
    eso = [name for name in unknown if name in ESO_REFERENCE_FIELDS]
    if eso:
        reasons = "; ".join(f"{name}: {ESO_REFERENCE_FIELDS[name]}" for name in eso)
        raise BadRequest(f"{where}.{eso[0]} is ESO's and not taken here ({reasons})")
    if unknown:
        raise BadRequest(f"{where} has unknown fields: {', '.join(unknown)}")
    store, key, prop = entry.get("store"), entry.get("key"), entry.get("property")
    if not _is_name(store):
        raise BadRequest(f"{where}.store must be a ClusterSecretStore name (DNS-1123)")
    if not _is_text(key, MAX_KEY_LENGTH):
        raise BadRequest(f"{where}.key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
    if prop is not None and not _is_text(prop, MAX_PROPERTY_LENGTH):
        raise BadRequest(
            f"{where}.property must be a non-empty string of at most {MAX_PROPERTY_LENGTH} characters"
        )
    return RequestedItem(store, key, prop)


def _generator_item(where: str, entry: dict[str, Any]) -> RequestedItem:
    """``{generator: {namespace, kind, name}, property?}``."""
    unknown = sorted(set(entry) - ALLOWED_GENERATOR_ITEM_FIELDS)
    if unknown:
        raise BadRequest(
            f"{where} has unknown fields: {', '.join(unknown)} (a generator item has generator, property)"
        )
    generator, prop = entry["generator"], entry.get("property")
    if not isinstance(generator, dict) or set(generator) != {"namespace", "kind", "name"}:
        raise BadRequest(f"{where}.generator must be an object {{namespace, kind, name}}")
    parts = [generator[field] for field in ("namespace", "kind", "name")]
    if not all(isinstance(part, str) for part in parts):
        raise BadRequest(f"{where}.generator namespace, kind and name must be strings")
    ref = GeneratorRef(*parts)
    problem = ref.problem()
    if problem is not None:
        raise BadRequest(f"{where}: {problem}")
    if prop is not None and not _is_text(prop, MAX_PROPERTY_LENGTH):
        raise BadRequest(
            f"{where}.property must be a non-empty string of at most {MAX_PROPERTY_LENGTH} characters"
        )
    return RequestedItem.of_generator(ref, prop)


def _is_name(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and len(value) <= 253 and DNS_SUBDOMAIN.match(value) is not None


def _is_text(value: Any, limit: int) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= limit and not CONTROL_CHARACTERS.search(value)
