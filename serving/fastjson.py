"""JSON on the servers' request paths: orjson, with the standard library's behaviour where it matters.

Every admission review and every secrets request is a JSON document in and a JSON document out, plus a
JSON log line. On the 2-core machine of docs/performance.md the standard library took 36 µs to write a
webhook's 2.6 KB patch and 9 µs to parse its 1 KB review; orjson takes 2 and 3. What changes for a
client: answers are compact (no spaces after ``:`` and ``,``) and non-ASCII text is written as UTF-8,
not as ``\\u`` escapes. orjson refuses what is not JSON and the standard library lets through (``NaN``,
``Infinity``, lone surrogates, nesting deeper than 1024), so such bodies get the same 400 as any other
malformed one. Values that must keep the standard library's exact text (a secret's map rendered as
JSON for a client, the digests of configuration) keep using it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def loads(document: bytes | str) -> Any:
    """Parse one JSON document; raises ``JSONDecodeError`` (a ``ValueError``) when it is not one."""
    return orjson.loads(document)


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; raises ``TypeError`` for what JSON cannot hold."""
    return orjson.dumps(value)


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys, so equal documents give equal bytes (a cache key); ``TypeError``
    as :func:`dumps`."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def log_line(entry: dict[str, Any]) -> str:
    """One log line: anything that is not JSON is written as its ``str``; a line is never lost."""
    try:
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer over 64 bits, which orjson does not write
        return json.dumps(entry, default=str, separators=(",", ":"))
