"""``esi-webhook serve``: gunicorn started from the command, over TLS that follows its files on disk."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from serving.tls import CertificateLoadError, ReloadingContext
from webhook.app import create_app
from webhook.errors import ConfigurationError
from webhook.logs import logging_config
from webhook.settings import Settings


class WebhookServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn application whose options come from our flags, not from gunicorn's own command line."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Copy our options into gunicorn's config (gunicorn calls this once, in the master)."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the WSGI app (in each worker)."""
        return create_app(self.settings)


def gunicorn_options(
    *, bind: str, cert_file: str, key_file: str, workers: int, threads: int, log_level: str
) -> dict[str, Any]:
    """gunicorn settings for the webhook: threaded workers, TLS with reloading, JSON logs, no access log."""
    try:
        context = ReloadingContext(cert_file, key_file)
    except CertificateLoadError as exc:
        raise ConfigurationError(str(exc)) from exc
    return {
        "bind": [bind],
        "workers": workers,
        "threads": threads,
        "worker_class": "serving.worker.BoundedThreadWorker",
        "certfile": cert_file,
        "keyfile": key_file,
        "ssl_context": context,
        "logconfig_dict": logging_config(log_level),
        "loglevel": log_level,
        "accesslog": None,
        "logger_class": "serving.access_log.NoAccessLogLogger",
        # The API server waits at most timeoutSeconds (5 s in the chart); nothing here should take longer.
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 75,
        "proc_name": "esi-webhook",
        "control_socket_disable": True,
    }


def serve(settings: Settings, options: dict[str, Any]) -> None:
    """Run gunicorn in the foreground until it is stopped."""
    WebhookServer(settings, options).run()
