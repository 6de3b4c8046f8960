"""Small helpers for tests that talk to the real API server: objects in, JSON out.

A thin ``requests`` client rather than the ``kubernetes`` package's generated one: tests create
arbitrary objects (CRDs, their custom resources, webhook configurations) from YAML, and want the API
server's own refusal (status, reason, message) to assert on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from hack.kube.plane import ControlPlane, write_kubeconfig

TIMEOUT = 30.0


class KubeError(Exception):
    """The API server refused a request: ``status`` (HTTP), ``reason`` and its ``message``."""

    def __init__(self, status: int, reason: str, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = dict(body or {})


@dataclass(frozen=True)
class Resource:
    """Where objects of one kind live: ``/api/v1`` or ``/apis/GROUP/VERSION``, plural, namespaced."""

    base: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The collection path (``name`` None) or the object path."""
        parts = [self.base]
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.plural} are namespaced: a namespace is needed")
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        return "/".join(parts)


class ApiClient:
    """JSON requests to one API server, as the admin or as whoever ``token`` belongs to."""

    def __init__(self, plane: ControlPlane, token: str | None = None) -> None:
        self.url = plane.url
        self.session = requests.Session()
        # Given on every request too: a session's own `verify` loses to $REQUESTS_CA_BUNDLE.
        self.verify = str(plane.ca_file)
        self.session.verify = self.verify
        if token is None:
            self.session.cert = plane.admin_cert
        else:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._resources: dict[tuple[str, str], Resource] = {}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; the decoded answer, or ``KubeError`` for any non-2xx status.

        ``accept``: e.g. ``application/jwk-set+json`` for the JWKS, the only type it is served as, or
        ``application/json;as=Table;v=v1;g=meta.k8s.io`` for what ``kubectl get`` prints.
        """
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        response = self.session.request(
            method,
            self.url + path,
            json=body,
            params=query,
            headers=headers,
            timeout=TIMEOUT,
            verify=self.verify,
        )
        try:
            document = response.json()
        except ValueError:
            document = {}
        if not response.ok:
            raise KubeError(
                response.status_code,
                str(document.get("reason", "")),
                str(document.get("message", response.text[:300])),
                document,
            )
        return document if isinstance(document, dict) else {"items": document}

    def get(self, path: str, **query: str) -> dict[str, Any]:
        """GET ``path``."""
        return self.request("GET", path, query=query or None)

    def resource(self, api_version: str, kind: str) -> Resource:
        """Find ``kind`` of ``api_version`` through discovery (cached; CRDs appear once Established)."""
        key = (api_version, kind)
        if key not in self._resources:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            for entry in self.get(base).get("resources", []):
                if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                    self._resources[key] = Resource(base, entry["name"], bool(entry.get("namespaced")))
                    break
            else:
                raise KubeError(404, "NotFound", f"{api_version} serves no kind {kind}")
        return self._resources[key]

    def object_path(self, obj: Mapping[str, Any], with_name: bool = True) -> str:
        """The path of ``obj`` (or of its collection when ``with_name`` is false)."""
        metadata = obj.get("metadata") or {}
        resource = self.resource(obj["apiVersion"], obj["kind"])
        namespace = metadata.get("namespace") or ("default" if resource.namespaced else None)
        return resource.path(namespace, metadata.get("name") if with_name else None)

    def create(self, obj: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """POST ``obj`` to its collection (``dry_run``: validated and admitted, never stored)."""
        query = {"dryRun": "All", "fieldValidation": "Strict"} if dry_run else {"fieldValidation": "Strict"}
        return self.request("POST", self.object_path(obj, with_name=False), obj, query=query)

    def delete(self, obj: Mapping[str, Any]) -> None:
        """DELETE ``obj``; one that is already gone is fine."""
        try:
            self.request("DELETE", self.object_path(obj))
        except KubeError as exc:
            if exc.status != 404:
                raise


def api_client(plane: ControlPlane, token: str | None = None) -> ApiClient:
    """An ``ApiClient`` for ``plane`` (admin unless a bearer ``token`` is given)."""
    return ApiClient(plane, token)


def create_object(plane: ControlPlane, obj: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Create ``obj`` as the admin, with strict field validation; the stored (or dry-run) object."""
    return api_client(plane).create(obj, dry_run=dry_run)


def ensure_namespace(plane: ControlPlane, name: str) -> None:
    """Create namespace ``name`` unless it exists (nothing deletes namespaces here: no controllers)."""
    _create_if_missing(plane, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def ensure_service_account(plane: ControlPlane, namespace: str, name: str) -> None:
    """Create ServiceAccount ``namespace/name`` (and its namespace) unless it exists.

    ``automountServiceAccountToken: false``: without a controller-manager nothing would make the token a
    pod's automount needs, and the pods here are stored, never run.
    """
    ensure_namespace(plane, namespace)
    _create_if_missing(
        plane,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
            "automountServiceAccountToken": False,
        },
    )


def request_token(  # noqa: PLR0917 - the positional order other helpers agreed on
    plane: ControlPlane,
    namespace: str,
    service_account: str,
    audiences: Sequence[str] | None,
    expiration_seconds: int = 600,
    pod: str | None = None,
) -> str:
    """A TokenRequest token for ``namespace/service_account`` (bound to ``pod`` when given).

    ``audiences`` None asks for the API server's default audience.
    """
    client = api_client(plane)
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
    if audiences is not None:
        spec["audiences"] = list(audiences)
    if pod is not None:
        uid = client.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")["metadata"]["uid"]
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}
    answer = client.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return str(answer["status"]["token"])


def wait_established(plane: ControlPlane, crd_name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until CustomResourceDefinition ``crd_name`` is Established; the CRD as then stored."""
    client = api_client(plane)
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}"
    deadline = time.monotonic() + timeout
    while True:
        crd = client.get(path)
        conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            return crd
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {crd_name} not Established within {timeout:.0f} s: {conditions}")
        time.sleep(0.1)


def _create_if_missing(plane: ControlPlane, obj: Mapping[str, Any]) -> None:
    try:
        create_object(plane, obj)
    except KubeError as exc:
        if exc.status != 409:
            raise


def token_kubeconfig(plane: ControlPlane, token: str, path: Path) -> Path:
    """Write a kubeconfig for ``plane`` that authenticates with bearer ``token`` (e.g. a ServiceAccount's)."""
    return write_kubeconfig(path, plane.url, plane.ca_file, "token", {"token": token})
