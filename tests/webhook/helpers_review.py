"""Helpers of the webhook tests: settings, reviews, patch application, schema validation."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import jsonpatch
import kubernetes_validate
from flask.testing import FlaskClient

from hack.admission import pod_create_review
from webhook.settings import Settings

SERVER_URL = "https://esi-federation.cluster-main.example.com"
OTHER_SERVER_URL = "https://esi-federation.backup.example.com"
CLUSTER = "client-cluster-alpha"
KUBERNETES_VERSIONS = ("1.29", "1.33")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def make_settings(**overrides: Any) -> Settings:
    """Settings of a typical client cluster, with ``overrides``."""
    values: dict[str, Any] = {
        "cluster_name": CLUSTER,
        "server_url": SERVER_URL,
        "allowed_server_urls": frozenset({OTHER_SERVER_URL}),
        "excluded_namespaces": frozenset({"esi-system"}),
    }
    values.update(overrides)
    return Settings(**values)


def review(pod: dict[str, Any] | None, *, namespace: str | None = None, **request: Any) -> dict[str, Any]:
    """An AdmissionReview of a pod CREATE, as the API server sends it."""
    return pod_create_review(pod, namespace=namespace, **request)


def decoded_patch(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch of an AdmissionReview answer ([] when it carries none)."""
    response = answer["response"]
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    return json.loads(base64.b64decode(response["patch"]))


def apply(pod: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply ``patch`` as the API server would, on a copy of ``pod``."""
    return jsonpatch.apply_patch(pod, patch, in_place=False)


def assert_valid_pod(pod: dict[str, Any]) -> None:
    """The pod passes the strict Kubernetes schemas and the checks the API server adds to them."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
    spec = pod["spec"]
    volumes = [volume["name"] for volume in spec.get("volumes", [])]
    containers = spec.get("initContainers", []) + spec["containers"]
    # The schemas do not carry the API server's name rules; check the ones the webhook could break.
    for name in volumes + [item["name"] for item in containers]:
        assert DNS_LABEL.match(name), f"{name!r} is not a DNS-1123 label"
    assert len(volumes) == len(set(volumes)), f"duplicate volume names: {volumes}"
    names = [item["name"] for item in containers]
    assert len(names) == len(set(names)), f"duplicate container names: {names}"
    for item in containers:
        mounts = item.get("volumeMounts", [])
        assert {mount["name"] for mount in mounts} <= set(volumes), f"{item['name']} mounts a missing volume"
        paths = [mount["mountPath"] for mount in mounts]
        assert len(paths) == len(set(paths)), f"{item['name']} mounts two volumes at one path"
        env = [variable["name"] for variable in item.get("env", [])]
        assert len(env) == len(set(env)), f"{item['name']} sets an env var twice"


def post_review(client: FlaskClient, document: Any) -> Any:
    """POST a review (any JSON document) to /mutate and return the response."""
    return client.post("/mutate", data=json.dumps(document), content_type="application/json")
