"""AdmissionReview documents as the API server sends them, for the webhook's tests and benchmarks."""

from __future__ import annotations

import uuid
from typing import Any


def pod_create_review(
    pod: dict[str, Any] | None, *, namespace: str | None = None, **request: Any
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview of a pod CREATE; ``request`` overrides its fields."""
    metadata = (pod or {}).get("metadata") or {}
    body: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": namespace or metadata.get("namespace") or "default",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "dryRun": False,
    }
    if pod is not None:
        body["object"] = pod
    body.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}
