"""The one place that knows the order: excluded? opted in? already injected? parse -> plan -> respond."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from serving import fastjson
from webhook import annotations as notes
from webhook.errors import BadReview, PodRejected
from webhook.mutation import plan
from webhook.patches import PatchOp
from webhook.planned import NOTHING_KEPT, PlannedPatch, PlannedPatches
from webhook.reviews import AdmissionRequest, AdmissionReview, respond
from webhook.settings import Settings

MAX_PATCH_BYTES = 1024 * 1024
Result = Literal["injected", "skipped", "excluded", "already_injected", "rejected"]


@dataclass(frozen=True)
class Decision:
    """The answer to one review, with what the logs and metrics need to know about it."""

    review: AdmissionReview
    result: Result
    patch: list[PatchOp] = field(default_factory=list)
    message: str | None = None


def admit(request: AdmissionRequest, settings: Settings, planned: PlannedPatches = NOTHING_KEPT) -> Decision:
    """Decide one AdmissionRequest. Raise :class:`BadReview` when its pod object is unreadable.

    ``planned`` (one per app, for these ``settings``) answers a pod object seen before with its patch.
    """
    uid = request["uid"]
    pod = request.get("object")
    if not _is_pod_create(request):
        return Decision(respond(uid), "skipped")
    if pod is None:
        raise BadReview("request.object is missing")
    namespace = request.get("namespace") or _metadata(pod).get("namespace") or "default"
    if not isinstance(namespace, str):
        raise BadReview("pod metadata.namespace must be a string")
    if namespace in settings.excluded_namespaces:
        return Decision(respond(uid), "excluded")
    pod_annotations = _annotations(pod)
    if notes.is_injected(pod_annotations):
        return Decision(respond(uid), "already_injected")
    if not notes.opted_in(pod_annotations):
        return Decision(respond(uid), "skipped")
    return _inject(uid, pod, pod_annotations, settings, planned)


def _inject(
    uid: str,
    pod: dict[str, Any],
    pod_annotations: dict[str, Any],
    settings: Settings,
    planned: PlannedPatches,
) -> Decision:
    key = planned.key(pod)
    found = planned.get(key) if key is not None else None
    if found is not None:
        return Decision(respond(uid, patch=found.encoded), "injected", patch=list(found.ops))
    try:
        ops = plan(pod, notes.parse_opted_in(pod_annotations), settings)
        patch = _encoded(ops)
    except PodRejected as exc:
        return Decision(respond(uid, refusal=str(exc)), "rejected", message=str(exc))
    if key is not None:
        planned.put(key, PlannedPatch(patch, tuple(ops)))
    return Decision(respond(uid, patch=patch), "injected", patch=ops)


def _encoded(ops: list[PatchOp]) -> bytes:
    """The patch as JSON, refused when larger than ``MAX_PATCH_BYTES``."""
    # The patch repeats annotation values into several containers (and a container's command once):
    # left unbounded, a 1 MiB review was answered with 16 MiB. A pod that large would not be stored.
    encoded = fastjson.dumps(ops)
    size = len(encoded)
    if size > MAX_PATCH_BYTES:
        raise PodRejected(
            f"the injection would add {size} bytes to the pod, more than the {MAX_PATCH_BYTES} accepted: "
            "use fewer or shorter ESI annotations, or inject fewer containers"
        )
    return encoded


def _is_pod_create(request: AdmissionRequest) -> bool:
    kind = request["kind"]
    return kind["group"] == "" and kind["kind"] == "Pod" and request.get("operation", "CREATE") == "CREATE"


def _metadata(pod: dict[str, Any]) -> dict[str, Any]:
    metadata = pod.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BadReview("pod metadata must be an object")
    return metadata


def _annotations(pod: dict[str, Any]) -> dict[str, Any]:
    found = _metadata(pod).get("annotations")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise BadReview("pod metadata.annotations must be an object")
    return found
