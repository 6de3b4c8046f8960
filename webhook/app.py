"""create_app(settings) -> Flask: the webhook's WSGI application. Nothing is built at import time.

Under plain gunicorn, ``gunicorn 'webhook.app:create_app()'`` reads the settings from the ``ESI_WEBHOOK_*``
environment variables (see ``esi-webhook serve --help``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import Flask

from webhook import api, logs
from webhook.metrics import WebhookMetrics
from webhook.planned import PlannedPatches
from webhook.settings import Settings

EXTENSION = "esi_webhook"


@dataclass(frozen=True)
class WebhookState:
    """What the routes share: the validated settings, this app's metrics and the patches it planned."""

    settings: Settings
    metrics: WebhookMetrics
    planned: PlannedPatches


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for ``settings``, or for the settings the environment describes."""
    if settings is None:
        # The entry point under plain gunicorn: the environment is the whole configuration, logs included.
        from webhook.options import log_level_from_environment, settings_from_environment  # noqa: PLC0415

        settings = settings_from_environment(os.environ)
        logs.configure(log_level_from_environment(os.environ))
    app = Flask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[EXTENSION] = WebhookState(settings, WebhookMetrics.create(), PlannedPatches())
    api.register(app)
    return app
