"""``spec.tokenReview`` against the real API server: a token whose pod or ServiceAccount is gone is refused.

The reviewer is a ServiceAccount bound to the built-in ``system:auth-delegator`` ClusterRole, as
docs/kubernetes-mode.md tells users to set it up; its token reaches the server as a Secret manifest.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hack.kube import ControlPlane
from hack.kube.client import KubeError, api_client, create_object, ensure_service_account, request_token
from tests.helpers_stack import AUDIENCE, CLUSTER, STORE, authorization, fake_store, seed_values
from tests.kube.helpers_plane import (
    ServedFederation,
    kubernetes_federation,
    serve_federation,
    stored_pod,
    write_manifests,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

CACHE_TTL = 1.0
# kube-apiserver keeps a successful token authentication for 10 s (measured here: a deleted pod's token
# still reviewed as authenticated for 10 s, then "service account token has been invalidated").
API_SERVER_CACHE = 10.0
SECRETS = [{"store": STORE, "key": "api-keys", "property": "service-a-token"}]
REVIEWER_NAMESPACE = "esi-reviewers"


@dataclass
class Reviewed:
    served: ServedFederation
    namespace: str


def subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@pytest.fixture(scope="module")
def reviewed(kube_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewed]:
    namespace = "review-" + secrets.token_hex(3)
    for account in ("bound-client", "doomed-client"):
        ensure_service_account(kube_plane, namespace, account)
    ensure_service_account(kube_plane, REVIEWER_NAMESPACE, "esi-federation-reviewer")
    try:
        create_object(
            kube_plane,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "esi-federation-reviewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": "esi-federation-reviewer",
                        "namespace": REVIEWER_NAMESPACE,
                    }
                ],
            },
        )
    except KubeError as exc:
        if exc.status != 409:
            raise
    reviewer_token = request_token(kube_plane, REVIEWER_NAMESPACE, "esi-federation-reviewer", None, 3600)
    federation = kubernetes_federation(kube_plane, CLUSTER, [AUDIENCE])
    federation["spec"]["tokenReview"] = {
        "tokenSecretRef": {"name": "alpha-reviewer", "namespace": "esi-system", "key": "token"}
    }
    reviewer_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "alpha-reviewer", "namespace": "esi-system"},
        "data": {"token": base64.b64encode(reviewer_token.encode()).decode()},
    }
    values = seed_values()
    directory = tmp_path_factory.mktemp("token-review")
    manifests = write_manifests(
        directory / "manifests",
        [
            fake_store(STORE, {"api-keys": {"service-a-token": values["service-a-token"]}}),
            federation,
            reviewer_secret,
            *(
                authorization(f"allow-{account}", subject(namespace, account), issuer=kube_plane.issuer)
                for account in ("bound-client", "doomed-client")
            ),
        ],
    )
    args = ["--manifests", str(manifests), "--token-review-cache-ttl", f"{CACHE_TTL:g}s"]
    with serve_federation(directory, args) as served:
        yield Reviewed(served, namespace)


def refused_within(served: ServedFederation, token: str, seconds: float) -> float | None:
    """Seconds until the server answers 401 for ``token`` (None if it never did within ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if served.post_secrets(token, SECRETS).status_code == 401:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def test_tokens_of_a_deleted_pod_or_service_account_are_refused_within_both_caches(
    kube_plane: ControlPlane, reviewed: Reviewed
) -> None:
    namespace = reviewed.namespace
    pod = "bound-" + secrets.token_hex(3)
    create_object(kube_plane, stored_pod(namespace, pod, "bound-client"))
    tokens = {
        "pod": request_token(kube_plane, namespace, "bound-client", [AUDIENCE], pod=pod),
        "service account": request_token(kube_plane, namespace, "doomed-client", [AUDIENCE]),
    }
    accepted = {
        what: reviewed.served.post_secrets(token, SECRETS).status_code for what, token in tokens.items()
    }
    assert accepted == {"pod": 200, "service account": 200}

    client = api_client(kube_plane)
    client.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod}")
    client.request("DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/doomed-client")

    # Both are refused at the latest once the server's cache and the API server's own 10 s cache of a
    # successful authentication have expired (see docs/kubernetes-mode.md).
    limit = CACHE_TTL + API_SERVER_CACHE + 3
    refused = {
        what: refused_within(reviewed.served, token, limit) is not None for what, token in tokens.items()
    }
    assert refused == {"pod": True, "service account": True}
    log = reviewed.served.stderr()
    assert not any(token in log for token in tokens.values())
