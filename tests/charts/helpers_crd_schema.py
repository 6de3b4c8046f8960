"""The CRDs' OpenAPI v3 schemas as plain JSON Schema, to validate custom resources offline with jsonschema."""

from __future__ import annotations

import datetime
from typing import Any

import jsonschema

from tests.charts.helpers_rendering import SERVER_CHART, crds

FEDERATION = ("identity.federation.external-secrets.io", "KubernetesFederation")
AUTHORIZATION = ("federation.external-secrets.io", "Authorization")
AUTHORIZED_IDENTITY = ("federation.external-secrets.io", "AuthorizedIdentity")

FORMATS = jsonschema.FormatChecker([])


@FORMATS.checks("date-time", raises=ValueError)
def is_rfc3339_time(value: object) -> bool:
    """RFC 3339 timestamps as the API server writes them (``2026-01-01T00:00:00Z``)."""
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError(f"{value!r} has no time part")
    datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def json_schema(node: Any) -> Any:
    """A CRD's OpenAPI v3 schema as plain JSON Schema, closed like the API server's strict field validation.

    ``x-kubernetes-*`` keys are dropped; an object that lists its properties and does not preserve unknown
    fields rejects any other property, as ``kubectl apply`` (strict field validation) does.
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")
    }
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        converted["additionalProperties"] = False
    return converted


def crd_by_kind() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CRD."""
    return {(crd["spec"]["group"], crd["spec"]["names"]["kind"]): crd for crd in crds(SERVER_CHART)}


def validator(key: tuple[str, str]) -> jsonschema.Draft7Validator:
    """A validator of ``key``'s v1alpha1 schema; metadata is the API server's business, left open here."""
    (version,) = crd_by_kind()[key]["spec"]["versions"]
    schema = json_schema(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=FORMATS)


def errors(key: tuple[str, str], document: dict[str, Any]) -> list[str]:
    """Every schema violation in ``document``."""
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator(key).iter_errors(document)]
