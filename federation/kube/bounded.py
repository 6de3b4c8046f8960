"""JSON from the API server, bounded in depth: one deeply nested object never breaks a whole list.

CRDs that keep unknown fields (``spec.jwks.keys[]``, ``status``) let anyone who may write them nest a
value thousands deep. Python's JSON decoder gives up past about a thousand levels with a
``RecursionError`` that would fail the whole list or watch (and, uncaught, end the thread), and
anything that walks a deep value later (comparisons, copies) fails the same way. So:

- ``decode`` parses a document; when the decoder cannot, every value nested deeper than
  ``MAX_DEPTH`` is cut out of the text first and replaced by the string ``TOO_DEEP``;
- ``admit`` then decides per object: too deep (or cut) only in ``status`` -> the status is dropped
  (this server rewrites its own status); anywhere else -> the object is refused, and the caller
  treats it as absent and logs it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
TOO_DEEP = "\x00esi:nested-too-deeply"
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def decode(data: bytes | str) -> Any:
    """The JSON value of ``data``; values nested deeper than ``MAX_DEPTH`` become ``TOO_DEEP`` when the
    decoder cannot take the document as it is. ``ValueError`` when it is not JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raw = data.encode() if isinstance(data, str) else data
        return json.loads(_cut(raw))


def _cut(raw: bytes) -> bytes:
    """``raw`` with every array or object that opens deeper than ``MAX_DEPTH`` replaced by ``TOO_DEEP``."""
    pieces: list[bytes] = []
    depth, kept_from, cut_at = 0, 0, -1
    marker = json.dumps(TOO_DEEP).encode()
    for token in _TOKENS.finditer(raw):
        text = token.group()
        if text in (b"[", b"{"):
            depth += 1
            if depth == MAX_DEPTH + 1 and cut_at < 0:
                cut_at = token.start()
        elif text in (b"]", b"}"):
            if depth == MAX_DEPTH + 1 and cut_at >= 0:
                pieces += [raw[kept_from:cut_at], marker]
                kept_from, cut_at = token.end(), -1
            depth -= 1
    pieces.append(raw[kept_from:])
    return b"".join(pieces)


def too_deep(value: Any) -> bool:
    """Whether ``value`` nests deeper than ``MAX_DEPTH`` or holds a cut-out value (iterative)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            if current == TOO_DEEP:
                return True
            continue
        if depth >= MAX_DEPTH:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def admit(obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` as it may be held: without a too-deep ``status``; None when the rest is too deep."""
    if not too_deep(obj):
        return obj
    rest = {key: value for key, value in obj.items() if key != "status"}
    return None if too_deep(rest) else rest
