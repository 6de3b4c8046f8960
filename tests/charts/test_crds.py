"""The CRDs shipped by the server chart: shape, printer columns, and what their OpenAPI schemas accept."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.charts.helpers_crd_schema import (
    AUTHORIZATION,
    AUTHORIZED_IDENTITY,
    FEDERATION,
    crd_by_kind,
    errors,
)
from tests.charts.helpers_rendering import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "cluster-main"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

FULL_FEDERATION: dict[str, Any] = {
    "apiVersion": "identity.federation.external-secrets.io/v1alpha1",
    "kind": "KubernetesFederation",
    "metadata": {"name": "client-cluster-beta"},
    "spec": {
        "url": "https://client-cluster-beta.example.com:6443",
        "issuer": "https://oidc.beta.example.com",
        "caBundle": PEM,
        "jwksURL": "https://oidc.beta.example.com/keys",
        "jwks": {
            "keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": "AQAB", "e": "AQAB"}]
        },
        "audiences": ["esi-federation", "esi-beta"],
        "tokenSecretRef": {"name": "beta-discovery", "namespace": "esi-system", "key": "token"},
        "tokenReview": {
            "tokenSecretRef": {"name": "beta-reviewer", "namespace": "esi-system", "key": "token"}
        },
    },
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KeysLoaded",
                "message": "1 key",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256", "thumbprint": "abc"}],
        "lastRefreshTime": "2026-01-01T00:05:00Z",
    },
}

FULL_AUTHORIZATION: dict[str, Any] = {
    "apiVersion": "federation.external-secrets.io/v1alpha1",
    "kind": "Authorization",
    "metadata": {"name": "allow-beta-team-a"},
    "spec": {
        "federationRef": {"kind": "KubernetesFederation", "name": "client-cluster-beta"},
        "subject": {
            "oidc": {
                "issuer": "https://oidc.beta.example.com",
                "subject": "system:serviceaccount:team-a:app.v2",
            }
        },
        "allowedClusterSecretStores": ["vault-prod"],
        "allowedSecrets": ["db-credentials", "team-a/*"],
        "allowedGenerators": [
            {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "Password",
                "name": "pw",
                "namespace": "a",
            }
        ],
        "allowedGeneratorStates": [{"namespace": "team-a"}],
    },
}


def example_documents() -> list[dict[str, Any]]:
    """Every KubernetesFederation and Authorization in examples/cluster-main/."""
    documents = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") in {FEDERATION[1], AUTHORIZATION[1]}:
                documents.append(document)
    return documents


def key_of(document: dict[str, Any]) -> tuple[str, str]:
    """(group, kind) of a custom resource."""
    return document["apiVersion"].split("/")[0], document["kind"]


def with_change(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``document`` with the dotted ``path`` set to ``value`` (deleted when value is ...)."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


def test_the_crds_are_cluster_scoped_v1alpha1_with_a_status_subresource() -> None:
    definitions = crd_by_kind()
    assert set(definitions) == {FEDERATION, AUTHORIZATION, AUTHORIZED_IDENTITY}
    for (group, _), crd in definitions.items():
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{group}"
        assert crd["spec"]["scope"] == "Cluster"
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize(
    ("key", "columns"),
    [
        (FEDERATION, ["READY", "URL", "ISSUER", "AGE"]),
        (AUTHORIZATION, ["SUBJECT", "STORES", "FEDERATION", "AGE"]),
        (AUTHORIZED_IDENTITY, ["SUBJECT", "FEDERATION", "AGE"]),
    ],
)
def test_printer_columns_show_the_essentials(key: tuple[str, str], columns: list[str]) -> None:
    (version,) = crd_by_kind()[key]["spec"]["versions"]
    assert [column["name"] for column in version["additionalPrinterColumns"]] == columns


def test_the_ready_column_reads_the_ready_condition() -> None:
    (version,) = crd_by_kind()[FEDERATION]["spec"]["versions"]
    ready = version["additionalPrinterColumns"][0]
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_the_issuer_defaults_to_the_in_cluster_issuer() -> None:
    (version,) = crd_by_kind()[FEDERATION]["spec"]["versions"]
    issuer = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["issuer"]
    assert issuer["default"] == "https://kubernetes.default.svc.cluster.local"


def test_every_schema_node_is_structural() -> None:
    def untyped(node: dict[str, Any], where: str) -> list[str]:
        found = [] if "type" in node or node.get("x-kubernetes-preserve-unknown-fields") else [where]
        for name, child in node.get("properties", {}).items():
            found += untyped(child, f"{where}.{name}")
        if "items" in node:
            found += untyped(node["items"], f"{where}[]")
        return found

    for key, crd in crd_by_kind().items():
        (version,) = crd["spec"]["versions"]
        assert untyped(version["schema"]["openAPIV3Schema"], key[1]) == []


def test_the_examples_hold_both_kinds() -> None:
    assert {key_of(document) for document in example_documents()} == {FEDERATION, AUTHORIZATION}


@pytest.mark.parametrize("document", example_documents(), ids=lambda d: d["metadata"]["name"])
def test_every_example_is_accepted_by_its_crd(document: dict[str, Any]) -> None:
    assert errors(key_of(document), document) == []


@pytest.mark.parametrize("document", [FULL_FEDERATION, FULL_AUTHORIZATION], ids=lambda d: d["kind"])
def test_every_documented_field_is_accepted(document: dict[str, Any]) -> None:
    assert errors(key_of(document), document) == []


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("spec.url", "http://client.example.com", "does not match"),
        ("spec.url", ..., "'url' is a required property"),
        ("spec.jwksURL", "http://oidc.example.com/keys", "does not match"),
        ("spec.jwks", [{"kty": "RSA"}], "is not of type 'object'"),
        ("spec.jwks", {"key": []}, "'keys' is a required property"),
        ("spec.jwks", {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "is not one of"),
        ("spec.audiences", "esi-federation", "is not of type 'array'"),
        ("spec.caBundle", "not a certificate", "does not match"),
        ("spec.tokenSecretRef", {"name": "t", "key": "token"}, "'namespace' is a required property"),
        ("spec.tokenReview", {"secretRef": {"name": "t"}}, "'tokenSecretRef' is a required property"),
        ("spec.issuers", ["https://a"], "Additional properties are not allowed"),
        ("status.lastRefreshTime", "yesterday", "is not a 'date-time'"),
        ("status.conditions", [{"type": "Ready", "status": "Yes"}], "is not one of"),
    ],
)
def test_a_bad_federation_is_rejected(path: str, value: Any, reason: str) -> None:
    problems = errors(FEDERATION, with_change(FULL_FEDERATION, path, value))
    assert any(reason in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("spec.federationRef", ..., "'federationRef' is a required property"),
        ("spec.federationRef", {"kind": "SpiffeFederation", "name": "x"}, "is not one of"),
        ("spec.federationRef", {"kind": "KubernetesFederation"}, "'name' is a required property"),
        ("spec.subject", {"spiffe": {"spiffeID": "spiffe://x"}}, "'oidc' is a required property"),
        ("spec.subject", {"oidc": {"issuer": "https://a"}}, "'subject' is a required property"),
        ("spec.subject", {"oidc": {"issuer": "https://a", "subject": "user:alice"}}, "does not match"),
        (
            "spec.allowedGenerators",
            [{"namespace": "apps", "kind": "Password"}],
            "'name' is a required property",
        ),
        ("spec.allowedClusterSecretStores", "vault-prod", "is not of type 'array'"),
        ("spec.allowedSecrets", [""], "should be non-empty"),
        ("spec.allowedGenerators", {"name": "pw"}, "is not of type 'array'"),
        ("spec.allowedGeneratorStates", [{"namespace": 3}], "is not of type 'string'"),
        ("spec.allowedStores", ["vault-prod"], "Additional properties are not allowed"),
    ],
)
def test_a_bad_authorization_is_rejected(path: str, value: Any, reason: str) -> None:
    problems = errors(AUTHORIZATION, with_change(FULL_AUTHORIZATION, path, value))
    assert any(reason in problem for problem in problems), problems


def test_an_authorization_of_generators_only_needs_no_store() -> None:
    generators_only = with_change(FULL_AUTHORIZATION, "spec.allowedClusterSecretStores", ...)
    generators_only["spec"]["allowedGenerators"] = [{"namespace": "apps", "kind": "Password", "name": "pw"}]
    assert errors(AUTHORIZATION, generators_only) == []
