r"""The provider interface every store implements, and ESO's rules for picking a property.

A provider reads one *key* and returns the secret's data: a mapping for map-shaped secrets (Vault KV,
Kubernetes Secrets), or a string for single-value secrets (the fake provider). ``extract`` then applies
ESO's remote-reference semantics, so each provider only has to know how to read.

A property names a top-level field; when no field has that exact name, it is read as ESO reads it with
gjson: a path of dot-separated steps (``a.b.c``; ``\.`` is a dot inside a name; a number indexes a
list), descending into values that are JSON text too (a Kubernetes Secret's ``config`` key holding a
JSON document). gjson's query syntax (``*``, ``?``, ``#``, ``|``, ``@``) is refused with a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from federation.errors import BadRequest, SecretNotFound

SecretData = Mapping[str, Any] | str
_QUERY = re.compile(r"(?<!\\)[*?#|@!]")
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


class Provider(Protocol):
    """A store backend. Implementations are built once per store and reused across requests.

    ``reads_in_memory``: a read only looks up data the provider already holds (the ``fake`` store, a
    ``kubernetes`` store of cluster-main's own Secrets). Such reads are neither merged nor cached:
    merging would cost more than the read, and a cached answer could only be older.
    """

    reads_in_memory: bool

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
    value = mapping[prop] if prop in mapping else _walk(mapping, prop, key)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _walk(mapping: Mapping[str, Any], prop: str, key: str) -> Any:
    """The value at the gjson-style path ``prop`` (``a.b.0.c``)."""
    if _QUERY.search(prop):
        raise BadRequest(
            f"property {prop!r}: gjson queries (*, ?, #, |, @, !) are not supported; "
            "use a path of names and list indexes (a.b.0.c)"
        )
    steps = [step.replace("\\.", ".") for step in _UNESCAPED_DOT.split(prop)]
    missing = SecretNotFound(f"property {prop!r} of key {key!r} does not exist")
    if len(steps) < 2 or not all(steps):
        raise missing  # one step (a plain missing name), or an empty step (a..b, .a)
    node: Any = mapping
    for step in steps:
        if isinstance(node, str):
            try:
                node = json.loads(node)
            except ValueError:
                raise missing from None
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            raise missing
    return node


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
