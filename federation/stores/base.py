"""The provider interface every store implements, and ESO's rules for picking a property.

A provider reads one *key* and returns the secret's data: a mapping for map-shaped secrets (Vault KV,
Kubernetes Secrets), or a string for single-value secrets (the fake provider). ``extract`` then applies
ESO's remote-reference semantics, so each provider only has to know how to read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from federation.errors import SecretNotFound

SecretData = Mapping[str, Any] | str


class Provider(Protocol):
    """A store backend. Implementations are built once per store and reused across requests."""

    def read(self, key: str) -> SecretData:
        """Return the secret at ``key``.

        Raise ``SecretNotFound`` when it does not exist, ``StoreUnavailable`` when the store cannot be
        reached (or is sealed), and ``StoreError`` for any other failure. Never put a value in a message.
        """
        ...

    def close(self) -> None:
        """Release connections; called when the store's configuration changes or the server stops."""
        ...


def extract(data: SecretData, key: str, prop: str | None) -> str:
    """Return the value of ``prop`` (or the whole secret as JSON text when ``prop`` is None).

    Non-string values come back as JSON text. A string secret is parsed as a JSON object when a
    property is asked of it, as ESO's fake provider does.
    """
    if prop is None:
        return data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    mapping = _as_mapping(data, key)
    if prop not in mapping:
        raise SecretNotFound(f"property {prop!r} of key {key!r} does not exist")
    value = mapping[prop]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _as_mapping(data: SecretData, key: str) -> Mapping[str, Any]:
    if not isinstance(data, str):
        return data
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise SecretNotFound(f"key {key!r} holds a single value, not properties")
    return parsed
