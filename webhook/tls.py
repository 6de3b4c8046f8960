"""An SSLContext that follows its certificate and key files on disk, for gunicorn's ``ssl_context`` hook.

gunicorn asks for a context for every accepted connection; the default builds a new one from the files
each time. This keeps one context and builds a new one only when a file's identity (inode, size, mtime)
changes, as it does when cert-manager or a kubelet Secret update swaps the files. A pair that does not
load (e.g. a new certificate whose key is not written yet) is logged once and the last good context stays
in use until the pair loads.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

from webhook.errors import ConfigurationError

log = logging.getLogger("webhook.tls")

Stamp = tuple[tuple[int, int, int], ...]


class ReloadingContext:
    """Callable with gunicorn's ``ssl_context(config, default_factory)`` signature."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._failed_stamp: Stamp | None = None
        self._context = self._load()
        self._stamp = self._current_stamp()

    def __call__(self, config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """Return the context for the files as they are now (gunicorn hook)."""
        return self.context()

    def context(self) -> ssl.SSLContext:
        """Return the current context, rebuilt first if the files changed and load."""
        stamp = self._current_stamp()
        if stamp is None or stamp in (self._stamp, self._failed_stamp):
            return self._context
        with self._lock:
            if stamp not in (self._stamp, self._failed_stamp):
                self._reload(stamp)
        return self._context

    def _reload(self, stamp: Stamp) -> None:
        try:
            self._context = self._load()
        except ConfigurationError as exc:
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
            return tuple(_identity(os.stat(path)) for path in (self.cert_file, self.key_file))
        except OSError:
            return self._stamp

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # The message names the files only; ssl's own text never holds key material.
            raise ConfigurationError(
                f"cannot load TLS certificate {self.cert_file} with key {self.key_file}: "
                f"{exc.__class__.__name__}"
            ) from exc
        return context


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    return (status.st_ino, status.st_size, status.st_mtime_ns)
