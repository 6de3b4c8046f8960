"""AdmissionReview ``admission.k8s.io/v1`` wire format: typed, decoded strictly, answered by respond()."""

from __future__ import annotations

import base64
from typing import Any, Literal, NotRequired, TypedDict

from serving import fastjson
from webhook.errors import BadReview

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


class GroupVersionKind(TypedDict):
    """``request.kind``: what the object is."""

    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict):
    """The parts of ``request`` the webhook reads."""

    uid: str
    kind: GroupVersionKind
    operation: NotRequired[str]
    namespace: NotRequired[str]
    name: NotRequired[str]
    object: NotRequired[dict[str, Any]]
    dryRun: NotRequired[bool]


class Status(TypedDict):
    """``response.status``: the message a refused user sees."""

    code: int
    message: str


class AdmissionResponse(TypedDict):
    """``response`` as the API server expects it; ``uid`` always echoes the request's."""

    uid: str
    allowed: bool
    status: NotRequired[Status]
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]


class AdmissionReview(TypedDict):
    """The whole answer document."""

    apiVersion: str
    kind: str
    response: AdmissionResponse


def decode(body: bytes) -> AdmissionRequest:
    """Parse a request body into its ``request``; raise :class:`BadReview` for anything malformed."""
    try:
        document = fastjson.loads(body)
    except ValueError as exc:
        raise BadReview("body is not JSON") from exc
    if not isinstance(document, dict):
        raise BadReview("body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise BadReview(f"expected apiVersion {API_VERSION} and kind {KIND}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid is missing")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not all(
        isinstance(kind.get(part), str) for part in ("group", "version", "kind")
    ):
        raise BadReview("request.kind must hold group, version and kind")
    for key in ("operation", "namespace", "name"):
        if key in request and request[key] is not None and not isinstance(request[key], str):
            raise BadReview(f"request.{key} must be a string")
    if request.get("object") is not None and not isinstance(request["object"], dict):
        raise BadReview("request.object must be an object")
    return request  # type: ignore[return-value]  # every field read later was checked above


def respond(uid: str, *, patch: bytes = b"", refusal: str | None = None, code: int = 403) -> AdmissionReview:
    """Build the AdmissionReview answer: allowed with an optional patch (a JSON Patch, already encoded),
    or refused with a message."""
    response: AdmissionResponse = {"uid": uid, "allowed": refusal is None}
    if refusal is not None:
        response["status"] = {"code": code, "message": refusal}
    elif patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(patch).decode("ascii")
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
