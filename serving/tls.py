"""An SSLContext that follows its certificate and key files on disk, for gunicorn's ``ssl_context`` hook.

gunicorn asks for a context for every accepted connection; its default builds a new one from the files
each time, which costs more server CPU than the handshake itself (about 1.5 ms against 0.6 ms with an
ECDSA P-256 key here): every esi-init opens a new connection. This keeps one context, looks at the files
at most once per ``check_interval`` and builds a new context only when their content changed, as it does
when cert-manager or a kubelet Secret update swaps them. Content, not mtime, decides: timestamps are too
coarse to tell two quick writes apart. A pair that does not load (a new certificate whose key is not
written yet) is logged once, and the last good context stays in use until the pair loads.

No TLS 1.3 session tickets are issued: every esi-init is a new process with nothing to resume a session
from, so a ticket is work and bytes for nothing (about 0.1 ms of server CPU per connection).
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("serving.tls")

Stamp = tuple[bytes, bytes]


class CertificateLoadError(Exception):
    """The certificate and key files do not load as a pair; the message names the files only."""


class ReloadingContext:
    """Callable with gunicorn's ``ssl_context(config, default_factory)`` signature."""

    def __init__(self, cert_file: str, key_file: str, check_interval: float = 1.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._failed_stamp: Stamp | None = None
        self._checked_at = time.monotonic()
        self._stamp = self._current_stamp()
        self._context = self._load()

    def __call__(self, config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """Return the context for the files as they are now (gunicorn hook)."""
        return self.context()

    def context(self) -> ssl.SSLContext:
        """Return the current context, rebuilt first if the files changed and the new pair loads."""
        if time.monotonic() - self._checked_at < self.check_interval:
            return self._context
        with self._lock:
            self._checked_at = time.monotonic()
            stamp = self._current_stamp()
            if stamp is not None and stamp not in (self._stamp, self._failed_stamp):
                self._reload(stamp)
        return self._context

    def _reload(self, stamp: Stamp) -> None:
        try:
            self._context = self._load()
        except CertificateLoadError as exc:
            self._failed_stamp = stamp
            log.warning(
                "keeping the previous TLS certificate: %s", exc, extra={"fields": {"event": "tls_reload"}}
            )
            return
        self._stamp = stamp
        log.info(
            "TLS certificate reloaded", extra={"fields": {"event": "tls_reload", "cert": self.cert_file}}
        )

    def _current_stamp(self) -> Stamp | None:
        try:
            return (_digest(self.cert_file), _digest(self.key_file))
        except OSError:
            return None

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.num_tickets = 0
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # The message names the files only; ssl's own text never holds key material.
            raise CertificateLoadError(
                f"cannot load TLS certificate {self.cert_file} with key {self.key_file}: "
                f"{exc.__class__.__name__}"
            ) from exc
        return context


def _digest(path: str) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()
