"""The chart's CRDs and the repository's examples on the real API server: what it stores, what it refuses."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, create_object, ensure_namespace, ensure_service_account
from tests.kube.helpers_plane import REPO, dropped_fields, install_crds

pytestmark = [pytest.mark.kube, pytest.mark.slow]

# `fieldValidation=Strict` (what kubectl sends by default) exists since Kubernetes 1.25.
STRICT_FIELDS_MINOR = 25
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


@pytest.fixture(scope="module")
def crds(kube_plane: ControlPlane) -> list[dict[str, Any]]:
    return install_crds(kube_plane)


def as_stored(document: dict[str, Any]) -> dict[str, Any]:
    """A Secret's write-only ``stringData`` is stored base64-encoded in ``data``, as the API does it."""
    if document["kind"] != "Secret" or "stringData" not in document:
        return document
    stored = copy.deepcopy(document)
    for key, value in stored.pop("stringData").items():
        stored.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
    return stored


def example_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_both_crds_of_the_chart_become_established_with_their_names_accepted(
    crds: list[dict[str, Any]],
) -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds}
    for kind in ("KubernetesFederation", "Authorization"):
        conditions = {c["type"]: c for c in by_kind[kind]["status"]["conditions"]}
        assert conditions["NamesAccepted"]["status"] == "True", conditions["NamesAccepted"]
        assert conditions["Established"]["status"] == "True"
        # The API server stores the schema as given: nothing of it was dropped as non-structural.
        assert "NonStructuralSchema" not in conditions


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_every_example_is_accepted(kube_plane: ControlPlane, crds: list[dict[str, Any]], path: Path) -> None:
    documents = example_documents(path)
    assert documents
    for document in documents:
        namespace = document.get("metadata", {}).get("namespace")
        if namespace:
            ensure_namespace(kube_plane, namespace)  # as `kubectl create namespace` would, first
        if document["kind"] == "Pod":
            ensure_service_account(kube_plane, namespace, document["spec"]["serviceAccountName"])
        stored = create_object(kube_plane, document, dry_run=True)
        assert stored["metadata"]["name"] == document["metadata"]["name"]
        assert dropped_fields(as_stored(document), stored) == []


FEDERATION = {
    "apiVersion": "identity.federation.external-secrets.io/v1alpha1",
    "kind": "KubernetesFederation",
    "metadata": {"name": "client-cluster-invalid"},
    "spec": {"url": "https://alpha.example.com:6443", "audiences": ["esi-federation"]},
}
AUTHORIZATION = {
    "apiVersion": "federation.external-secrets.io/v1alpha1",
    "kind": "Authorization",
    "metadata": {"name": "allow-invalid"},
    "spec": {
        "federationRef": {"kind": "KubernetesFederation", "name": "client-cluster-alpha"},
        "subject": {
            "oidc": {
                "issuer": "https://kubernetes.default.svc.cluster.local",
                "subject": "system:serviceaccount:monitoring:prometheus-esi-client",
            }
        },
        "allowedClusterSecretStores": ["vault-prod"],
    },
}


def changed(base: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    change(obj)
    return obj


INVALID = {
    "federation-url-not-a-string": (
        changed(FEDERATION, lambda o: o["spec"].update(url=6443)),
        ["spec.url", "string"],
    ),
    "federation-http-url": (
        changed(FEDERATION, lambda o: o["spec"].update(url="http://alpha.example.com")),
        ["spec.url", "^https://"],
    ),
    "federation-without-url": (changed(FEDERATION, lambda o: o["spec"].pop("url")), ["spec.url", "Required"]),
    "federation-unknown-field": (
        changed(FEDERATION, lambda o: o["spec"].update(audience="esi-federation")),
        ['unknown field "spec.audience"'],
    ),
    "federation-ca-bundle-not-pem": (
        changed(FEDERATION, lambda o: o["spec"].update(caBundle="not a certificate")),
        ["spec.caBundle"],
    ),
    "federation-http-jwks-url": (
        changed(FEDERATION, lambda o: o["spec"].update(jwksURL="http://alpha.example.com/keys")),
        ["spec.jwksURL"],
    ),
    "authorization-without-subject": (
        changed(AUTHORIZATION, lambda o: o["spec"].pop("subject")),
        ["spec.subject", "Required"],
    ),
    "authorization-stores-not-a-list": (
        changed(AUTHORIZATION, lambda o: o["spec"].update(allowedClusterSecretStores="vault-prod")),
        ["spec.allowedClusterSecretStores", "array"],
    ),
    "authorization-wrong-federation-kind": (
        changed(AUTHORIZATION, lambda o: o["spec"]["federationRef"].update(kind="OIDCFederation")),
        ["spec.federationRef.kind", "KubernetesFederation"],
    ),
    "authorization-subject-not-a-service-account": (
        changed(AUTHORIZATION, lambda o: o["spec"]["subject"]["oidc"].update(subject="alice")),
        ["spec.subject.oidc.subject"],
    ),
    "authorization-unknown-field": (
        changed(AUTHORIZATION, lambda o: o["spec"].update(allowedStores=["vault-prod"])),
        ['unknown field "spec.allowedStores"'],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_objects_are_refused_by_the_api_server_with_a_message_naming_the_field(
    kube_plane: ControlPlane, crds: list[dict[str, Any]], case: str
) -> None:
    obj, fragments = INVALID[case]
    client = api_client(kube_plane)
    if case.endswith("unknown-field") and kube_plane.minor < STRICT_FIELDS_MINOR:
        # Before strict field validation the API server accepts the object and drops the unknown field.
        stored = client.create(obj)
        client.delete(obj)
        assert dropped_fields(obj["spec"], stored["spec"]) != []
        return

    with pytest.raises(KubeError) as refused:
        client.create(obj)

    assert refused.value.status in (400, 422), refused.value
    for fragment in fragments:
        assert fragment in refused.value.message, refused.value.message
