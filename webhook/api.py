"""HTTP layer: /mutate decodes the review, admits it, encodes the answer; errors map to status codes here."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from serving import fastjson
from webhook import reviews
from webhook.admission import Decision, admit
from webhook.errors import BadReview, PayloadTooLarge, WebhookError

if TYPE_CHECKING:
    from webhook.app import WebhookState

log = logging.getLogger("webhook.api")

# Pods that are not ours are the bulk of the traffic: they are counted, and logged only at debug level.
_QUIET_RESULTS = frozenset({"skipped", "excluded", "already_injected"})


def register(app: Flask) -> None:
    """Add the routes and the error handlers to ``app``."""
    app.add_url_rule("/mutate", "mutate", mutate, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    app.register_error_handler(WebhookError, _webhook_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _state() -> WebhookState:
    return current_app.extensions["esi_webhook"]  # type: ignore[no-any-return]


def mutate() -> Response:
    """POST /mutate: answer one AdmissionReview; 400 when it is malformed, 413 when too large."""
    started = time.perf_counter()
    state = _state()
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"body over {state.settings.max_body_bytes} bytes") from exc
    admission_request = reviews.decode(body)
    decision = admit(admission_request, state.settings, state.planned)
    elapsed = time.perf_counter() - started
    state.metrics.observe(decision.result, elapsed)
    _log_decision(admission_request, decision, elapsed)
    return _json(decision.review, 200)


def healthz() -> Response:
    """GET /healthz: the process answers; no I/O."""
    return _json({"status": "ok"}, 200)


def readyz() -> Response:
    """GET /readyz: settings were validated when the app was built, so a built app is ready."""
    return _json({"status": "ready"}, 200)


def metrics() -> Response:
    """GET /metrics: Prometheus text format."""
    return Response(_state().metrics.render(), 200, mimetype="text/plain; version=0.0.4")


def _log_decision(admission_request: reviews.AdmissionRequest, decision: Decision, elapsed: float) -> None:
    level = logging.DEBUG if decision.result in _QUIET_RESULTS else logging.INFO
    if not log.isEnabledFor(level):
        return
    pod = admission_request.get("object") or {}
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
    fields: dict[str, Any] = {
        "event": "review",
        "uid": admission_request["uid"],
        "namespace": admission_request.get("namespace"),
        "pod": admission_request.get("name") or metadata.get("name") or metadata.get("generateName"),
        "result": decision.result,
        "dry_run": bool(admission_request.get("dryRun")),
        "latency_ms": round(elapsed * 1000, 3),
    }
    if decision.message:
        fields["reason"] = decision.message
    log.log(level, "admission review %s", decision.result, extra={"fields": fields})


def _webhook_error(exc: WebhookError) -> Response:
    if isinstance(exc, BadReview):
        _state().metrics.observe("bad_request")
    log.warning("refused request: %s", exc, extra={"fields": {"event": "bad_request", "status": exc.status}})
    return _json({"error": str(exc)}, exc.status)


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, RequestEntityTooLarge):
        return _webhook_error(PayloadTooLarge("body too large"))
    return _json({"error": exc.description or exc.name}, exc.code or 500)


def _unexpected_error(exc: Exception) -> Response:
    # A bug, not a bad review: logged with its traceback (which holds no request body), answered 500.
    log.error("unexpected error", exc_info=exc, extra={"fields": {"event": "error"}})
    return _json({"error": "internal error"}, 500)


def _json(document: object, status: int) -> Response:
    return Response(fastjson.dumps(document), status, mimetype="application/json")
