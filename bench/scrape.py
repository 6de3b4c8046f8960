"""Counters read from a server's ``/metrics`` (Prometheus text format), summed over label sets."""

from __future__ import annotations

import http.client
import re
import ssl
from collections.abc import Mapping

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


class ScrapeError(Exception):
    """``/metrics`` could not be read."""


def counter_sum(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    wanted = dict(labels or {})
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group("name") != name:
            continue
        found = {m.group("key"): m.group("value") for m in _LABEL.finditer(match.group("labels") or "")}
        if all(found.get(key) == value for key, value in wanted.items()):
            total += float(match.group("value"))
    return total


def scrape(host: str, port: int, context: ssl.SSLContext) -> str:
    """The text of ``GET /metrics``."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ScrapeError(f"cannot read /metrics of {host}:{port}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise ScrapeError(f"/metrics of {host}:{port} answered {response.status}")
    return body.decode("utf-8", "replace")
