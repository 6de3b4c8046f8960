"""gunicorn, started from ``esi-federation serve``: each worker builds its own app after the fork."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from federation.logs import gunicorn_logconfig
from federation.settings import Settings
from federation.stores.shared_reads import SharedReads
from serving.tls import ReloadingContext

WORKER_TIMEOUT_SECONDS = 30
# Handshake and request head read in the event loop, under a deadline (README: slow clients).
WORKER_CLASS = "serving.worker.BoundedThreadWorker"


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose configuration comes from ``Settings``, not from a file."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Made in the master, before the fork, so that every worker maps the same table.
        self._shared_reads = SharedReads.create(
            pending_limit=settings.store_connect_timeout + settings.store_read_timeout
        )
        super().__init__()

    def load_config(self) -> None:
        """Apply the settings to gunicorn's configuration."""
        s = self._settings
        options: dict[str, Any] = {
            "bind": [s.bind],
            "workers": s.workers,
            "threads": s.threads,
            "worker_class": WORKER_CLASS,
            "timeout": WORKER_TIMEOUT_SECONDS,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": None,
            "logger_class": "serving.access_log.NoAccessLogLogger",
            "logconfig_dict": gunicorn_logconfig(s.log_level),
            "proc_name": "esi-federation",
            # gunicorn's control socket lives in $HOME: two servers on one machine would share it.
            "control_socket_disable": True,
            "child_exit": _mark_worker_dead,
        }
        if not s.insecure_http:
            cert, key = str(s.tls_cert), str(s.tls_key)
            # One context per worker, rebuilt when the files change: gunicorn's default builds one per
            # connection. Files that do not load stop the start-up with gunicorn's "Error: <message>".
            options.update({"certfile": cert, "keyfile": key, "ssl_context": ReloadingContext(cert, key)})
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app in the worker, after the fork, so its threads belong to the worker."""
        from federation.app import create_app  # noqa: PLC0415
        from federation.logs import configure_logging  # noqa: PLC0415

        configure_logging(self._settings.log_level)
        return create_app(self._settings, shared_reads=self._shared_reads)


def _mark_worker_dead(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)
