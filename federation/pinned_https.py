"""HTTPS to a client cluster's API server, trusting only what its KubernetesFederation says.

Both outbound calls of the server go through here: the JWKS fetch and the optional TokenReview. The
trust anchor is the federation's ``caBundle`` (the system store when absent), never anything a caller
sent; redirects are not followed; there are no retries; the connect and total timeouts are the
settings' ``jwks_connect_timeout`` and ``jwks_total_timeout``; the answer is read up to a cap.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from federation.settings import Settings


class PinnedRequestError(Exception):
    """No usable answer (refused URL, TLS or connection failure, timeout, oversize); safe to log."""


@dataclass(frozen=True)
class PinnedAnswer:
    """The status and the body of an answer."""

    status: int
    body: bytes


def pinned_request(
    method: str,
    url: str,
    *,
    ca_bundle: str | None,
    headers: Mapping[str, str],
    settings: Settings,
    max_bytes: int,
    body: bytes | None = None,
) -> PinnedAnswer:
    """Send one request to ``url`` (``https://`` only) and read its answer, at most ``max_bytes``."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise PinnedRequestError(f"{url} is not an https:// URL")
    context = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else ssl.create_default_context()
    timeout = urllib3.Timeout(connect=settings.jwks_connect_timeout, total=settings.jwks_total_timeout)
    pool = urllib3.HTTPSConnectionPool(
        parts.hostname, parts.port or 443, ssl_context=context, timeout=timeout, retries=False, maxsize=1
    )
    deadline = time.monotonic() + settings.jwks_total_timeout
    try:
        response = pool.urlopen(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=body,
            headers=dict(headers),
            redirect=False,
            preload_content=False,
        )
        try:
            return PinnedAnswer(response.status, _read_capped(response, deadline, max_bytes))
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise PinnedRequestError(f"{url}: {type(exc).__name__}") from exc
    finally:
        pool.close()


def _read_capped(response: urllib3.BaseHTTPResponse, deadline: float, max_bytes: int) -> bytes:
    body = bytearray()
    for chunk in response.stream(16384):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PinnedRequestError(f"the answer is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise PinnedRequestError("the answer took longer than the total timeout")
    return bytes(body)
