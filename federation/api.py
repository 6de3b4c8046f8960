"""HTTP routes: decode the request, call the service, encode the answer. Errors map in one handler."""

from __future__ import annotations

import logging
import re
import secrets
import time
import traceback
from importlib import resources
from typing import Any

from flask import Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from federation.authz import RequestedItem
from federation.errors import FederationError, PayloadTooLarge, UnsupportedMediaType
from federation.generators.model import GeneratorRef
from federation.metrics import Metrics
from federation.service import FederationService, Outcome
from serving import fastjson

MAX_BODY_BYTES = 64 * 1024
PROBLEM_TYPE_BASE = "https://esi-federation.dev/problems/"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
AUDITED_ROUTES = frozenset({"secrets", "whoami", "compat_secret", "generate", "revoke_own", "revoke_others"})
audit_log = logging.getLogger("esi.audit")
log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Attach routes, request hooks and the one error handler to ``app``."""
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.register_error_handler(FederationError, _problem)
    app.register_error_handler(HTTPException, _http_problem)
    app.register_error_handler(Exception, _unexpected_problem)
    app.add_url_rule("/v1/secrets", "secrets", _secrets, methods=["POST"])
    app.add_url_rule("/v1/whoami", "whoami", _whoami, methods=["GET"])
    app.add_url_rule(
        "/secretstore/<store>/secrets/<path:key>", "compat_secret", _compat_secret, methods=["POST"]
    )
    generator = "/generators/<namespace>/<kind>/<name>"
    app.add_url_rule(generator, "generate", _generate, methods=["POST"])
    app.add_url_rule(generator, "revoke_own", _revoke_own, methods=["DELETE"])
    app.add_url_rule("/generators/<namespace>/revoke", "revoke_others", _revoke_others, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", _healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", _readyz, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])
    app.add_url_rule("/openapi.yaml", "openapi", _openapi, methods=["GET"])


def _service() -> FederationService:
    service: FederationService = current_app.extensions["esi.service"]
    return service


def _secrets() -> Response:
    outcome = _service().secrets(_bearer_token(), _json_body())
    g.outcome = outcome
    identity, fetched = outcome.answer()
    return _json(
        {
            "secrets": [_answer_item(f.item, f.value) for f in fetched],
            "identity": {"cluster": identity.federation, "subject": identity.subject},
        }
    )


def _compat_secret(store: str, key: str) -> Response:
    outcome = _service().secret(_bearer_token(), _json_body(), RequestedItem(store, key))
    g.outcome = outcome
    return _json(outcome.answer())


def _answer_item(item: RequestedItem, value: str) -> dict[str, Any]:
    """The request item echoed, with its value."""
    if item.generator is not None:
        ref = item.generator
        named = {"namespace": ref.namespace, "kind": ref.kind, "name": ref.name}
        return {"generator": named, "property": item.property, "value": value}
    return {"store": item.store, "key": item.key, "property": item.property, "value": value}


def _generate(namespace: str, kind: str, name: str) -> Response:
    body = request.get_data(cache=True) if request.content_length else b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    outcome = _service().generate(_bearer_token(), body, GeneratorRef(namespace, kind, name))
    g.outcome = outcome
    return _json(outcome.answer())


def _revoke_own(namespace: str, kind: str, name: str) -> Response:
    outcome = _service().revoke_own(_bearer_token(), GeneratorRef(namespace, kind, name))
    g.outcome = outcome
    outcome.answer_or_none()
    return _json(None)


def _revoke_others(namespace: str) -> Response:
    outcome = _service().revoke_others(_bearer_token(), _json_body(), namespace)
    g.outcome = outcome
    outcome.answer()
    return _json("GeneratorState deleted")


def _whoami() -> Response:
    outcome = _service().whoami(_bearer_token())
    g.outcome = outcome
    identity, permissions = outcome.answer()
    return _json(
        {
            "identity": {
                "cluster": identity.federation,
                "issuer": identity.issuer,
                "subject": identity.subject,
                "namespace": identity.namespace,
                "serviceAccount": identity.service_account,
                "pod": identity.pod_name,
            },
            "allowed": [
                {
                    "authorization": p.authorization,
                    "stores": list(p.stores),
                    "secrets": list(p.secrets),
                    "generators": [
                        {"namespace": ref.namespace, "kind": ref.kind, "name": ref.name}
                        for ref in p.generators
                    ],
                    "generatorStates": [{"namespace": namespace} for namespace in p.generator_states],
                }
                for p in permissions
            ],
        }
    )


def _healthz() -> Response:
    return _json({"status": "ok"})


def _readyz() -> Response:
    holder = _service().holder
    if not holder.ready:
        return _json({"status": "loading"}, 503)
    stale = holder.stale_reason()
    if stale is not None:
        return _json({"status": "stale", "reason": stale}, 503)
    return _json({"status": "ready"}, 200)


def _metrics() -> Response:
    metrics: Metrics = current_app.extensions["esi.metrics"]
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


def _openapi() -> Response:
    text = resources.files("federation").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return Response(text, mimetype="application/yaml")


def _json_body() -> bytes:
    """413 and 415 first; the body itself is the service's to decode, after the token."""
    current = _request()
    length = current.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if current.mimetype != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    try:
        body = current.get_data(cache=True)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    # A chunked body is cut at MAX_CONTENT_LENGTH without an error: one byte more than allowed was read.
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    return body


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # None, not an error: the service refuses it, so the audit line says "unauthenticated".
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _json(body: Any, status: int = 200) -> Response:
    return Response(fastjson.dumps(body), status=status, mimetype="application/json")


def _request() -> Request:
    """The request itself: each attribute read through Flask's ``request`` proxy looks it up again."""
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _start_request() -> None:
    g.started = time.perf_counter()
    sent = _request().headers.get("X-Request-Id", "")
    g.request_id = sent if REQUEST_ID.match(sent) else secrets.token_hex(16)


def _finish_request(response: Response) -> Response:
    state = g._get_current_object()  # type: ignore[attr-defined]
    current = _request()
    elapsed = time.perf_counter() - state.get("started", time.perf_counter())
    route = current.endpoint or "unknown"
    metrics: Metrics = current_app.extensions["esi.metrics"]
    metrics.child(metrics.requests, route, str(response.status_code)).inc()
    metrics.child(metrics.request_seconds, route).observe(elapsed)
    request_id = state.get("request_id", "")
    response.headers["X-Request-Id"] = request_id
    if route in AUDITED_ROUTES:
        audit = _audit_fields()
        metrics.child(metrics.decisions, audit["decision"]).inc()
        audit_log.info(
            "request",
            extra={
                "event": "audit",
                "request_id": request_id,
                "method": current.method,
                "path": current.path,
                "status": response.status_code,
                "latency_ms": round(elapsed * 1000, 2),
                **audit,
            },
        )
    return response


def _audit_fields() -> dict[str, Any]:
    # No outcome: refused before the service was asked (413, 415).
    outcome: Outcome[Any] = g.get("outcome") or Outcome[Any]("invalid")
    fields = outcome.audit_fields()
    if g.get("unexpected"):
        fields["decision"] = "error"
    return fields


def _problem(error: FederationError) -> Response:
    body = {
        "type": PROBLEM_TYPE_BASE + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    response = Response(fastjson.dumps(body), status=error.status, mimetype="application/problem+json")
    response.headers.update(error.headers())
    return response


def _http_problem(error: HTTPException) -> Response:
    if isinstance(error, RequestEntityTooLarge):
        return _problem(PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes"))
    status = error.code or 500
    generic = FederationError(error.description or error.name)
    generic.status, generic.title, generic.slug = status, error.name, error.name.lower().replace(" ", "-")
    return _problem(generic)


def _unexpected_problem(error: Exception) -> Response:
    # The type and the frames are logged, never the message: it could carry data we must not leak.
    frames = [
        f"{frame.filename}:{frame.lineno} {frame.name}" for frame in traceback.extract_tb(error.__traceback__)
    ]
    log.error(
        "unexpected error",
        extra={"error_type": type(error).__name__, "frames": frames, "request_id": g.get("request_id")},
    )
    g.unexpected = True
    return _problem(FederationError("an unexpected error occurred; see the server log for the request id"))
