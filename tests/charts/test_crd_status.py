"""The status that the server writes in Kubernetes mode fits the status schema of the CRDs.

The API server would refuse a status patch that its CRD's schema rejects. So every status that
``federation.kube.status`` builds (Ready or not, with or without keys) is checked against the shipped CRDs.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from federation.config.model import Configuration, Federation, Grant
from federation.keyset import VerificationKey
from federation.kube.status import KeyView, authorization_status, federation_status, with_transition_times
from tests.charts.helpers_crd_schema import AUTHORIZATION, FEDERATION, errors

NOW = 1_800_000_000.0
ALPHA = Federation(name="client-cluster-alpha", url="https://client-cluster-alpha.example.com:6443")
GRANT = Grant(
    name="allow-alpha-monitoring",
    federation=ALPHA.name,
    issuer=ALPHA.issuer,
    subject="system:serviceaccount:monitoring:prometheus-esi-client",
    stores=frozenset({"vault-prod"}),
)
CONFIG = Configuration(federations={ALPHA.name: ALPHA}, grants=(GRANT,))
KEYS = (
    VerificationKey(
        "rsa-1", "thumb-rsa", rsa.generate_private_key(65537, 2048).public_key(), frozenset({"RS256"})
    ),
    VerificationKey(
        "ec-1", "thumb-ec", ec.generate_private_key(ec.SECP256R1()).public_key(), frozenset({"ES256"})
    ),
)


def as_patched(status: dict[str, Any]) -> dict[str, Any]:
    """The status as it is stored after a JSON merge patch: ``null`` members are removed."""
    return {key: value for key, value in with_transition_times(status, {}, NOW).items() if value is not None}


def federation_document(status: dict[str, Any]) -> dict[str, Any]:
    """A KubernetesFederation carrying ``status``."""
    return {
        "apiVersion": "identity.federation.external-secrets.io/v1alpha1",
        "kind": "KubernetesFederation",
        "metadata": {"name": ALPHA.name},
        "spec": {"url": ALPHA.url},
        "status": as_patched(status),
    }


@pytest.mark.parametrize(
    ("view", "problems", "rejected"),
    [
        (KeyView(KEYS, NOW - 10, None), [], []),
        (KeyView(KEYS, NOW - 10, "connection refused"), [], []),
        (KeyView((), None, "connection refused"), [], []),
        (None, [], []),
        (KeyView(KEYS, NOW, None), [f"KubernetesFederation {ALPHA.name}: jwks and jwksURL both set"], []),
    ],
    ids=["ready", "stale", "unavailable", "never-fetched", "invalid"],
)
def test_every_federation_status_fits_the_crd(
    view: KeyView | None, problems: list[str], rejected: list[str]
) -> None:
    status = federation_status(ALPHA.name, CONFIG, problems, rejected, view)
    assert errors(FEDERATION, federation_document(status)) == []


def test_a_rejected_federations_status_fits_the_crd() -> None:
    status = federation_status("gone", CONFIG, [], ["KubernetesFederation gone: url must be https"], None)
    assert errors(FEDERATION, federation_document(status)) == []


@pytest.mark.parametrize("name", [GRANT.name, "not-loaded"], ids=["valid", "rejected"])
def test_every_authorization_status_fits_the_crd(name: str) -> None:
    document = {
        "apiVersion": "federation.external-secrets.io/v1alpha1",
        "kind": "Authorization",
        "metadata": {"name": name},
        "spec": {
            "federationRef": {"kind": "KubernetesFederation", "name": ALPHA.name},
            "subject": {"oidc": {"issuer": GRANT.issuer, "subject": GRANT.subject}},
            "allowedClusterSecretStores": ["vault-prod"],
        },
        "status": as_patched(authorization_status(name, CONFIG, [], [])),
    }
    assert errors(AUTHORIZATION, document) == []


def test_the_status_keys_list_each_key_by_its_public_identifiers() -> None:
    status = as_patched(federation_status(ALPHA.name, CONFIG, [], [], KeyView(KEYS, NOW, None)))
    assert {key["kid"]: key["kty"] for key in status["keys"]} == {"rsa-1": "RSA", "ec-1": "EC"}
    assert status["conditions"][0]["status"] == "True"
