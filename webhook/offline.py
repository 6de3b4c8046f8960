"""``esi-webhook mutate``: a manifest goes through the very code /mutate runs, wrapped in a review."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonpatch
import yaml

from serving.safe_yaml import YamlRefused, load_all
from webhook import reviews
from webhook.admission import admit
from webhook.errors import ConfigurationError
from webhook.patches import PatchOp
from webhook.settings import Settings

OUTPUTS = ("yaml", "json", "patch")
OFFLINE_UID = "esi-webhook-mutate"


@dataclass(frozen=True)
class OfflineResult:
    """The pod after mutation and the patch that made it, or the refusal message."""

    pod: dict[str, Any]
    patch: list[PatchOp]
    refusal: str | None = None


def mutate_document(text: str, settings: Settings, namespace: str | None = None) -> OfflineResult:
    """Admit the single Pod in ``text`` (YAML or JSON) and apply the resulting patch."""
    pod = _load_pod(text)
    metadata: dict[str, Any] = pod["metadata"] if isinstance(pod.get("metadata"), dict) else {}
    review = {
        "apiVersion": reviews.API_VERSION,
        "kind": reviews.KIND,
        "request": {
            "uid": OFFLINE_UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace or metadata.get("namespace") or "default",
            "object": pod,
        },
    }
    decision = admit(reviews.decode(json.dumps(review).encode()), settings)
    if decision.message is not None:
        return OfflineResult(pod, [], decision.message)
    mutated = jsonpatch.apply_patch(pod, decision.patch) if decision.patch else pod
    return OfflineResult(mutated, decision.patch)


def render(result: OfflineResult, output: str) -> str:
    """Text for stdout: the mutated pod as YAML or JSON, or the JSON patch."""
    if output == "patch":
        return json.dumps(result.patch, indent=2) + "\n"
    if output == "json":
        return json.dumps(result.pod, indent=2) + "\n"
    return yaml.safe_dump(result.pod, sort_keys=False, default_flow_style=False)


def _load_pod(text: str) -> dict[str, Any]:
    try:
        documents = [document for document in load_all(text) if document is not None]
    except YamlRefused as exc:
        raise ConfigurationError(f"the manifest is not loaded: {exc}") from None
    if len(documents) != 1:
        raise ConfigurationError(
            f"the manifest must hold exactly one Pod, it holds {len(documents)} documents"
        )
    pod = documents[0]
    if not isinstance(pod, dict) or pod.get("kind") != "Pod" or pod.get("apiVersion") != "v1":
        raise ConfigurationError("the manifest is not a v1 Pod")
    return pod
