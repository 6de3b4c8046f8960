"""Kubernetes mode: status of KubernetesFederations and Authorizations, written by the Lease holder only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from federation.app import create_app, stop_app
from federation.settings import Settings
from hack.client_issuer import ClientClusterIssuer, JwksBehaviour
from hack.sa_tokens import TokenIssuer
from tests.federation.kube.helpers_kube import (
    AUTHORIZATIONS,
    FEDERATIONS,
    LEASE_NAMESPACE,
    LEASES,
    EmulatedCluster,
    KubeStack,
    kube_stack,
    lease_holder,
    ready_condition,
    status_of,
    wait_until,
)
from tests.helpers_stack import CLUSTER, authorization

pytestmark = pytest.mark.slow

LEASE = LEASES.format(namespace=LEASE_NAMESPACE)
GRANT = AUTHORIZATIONS + "/allow-alpha-monitoring"


def _ready(cluster: EmulatedCluster, path: str) -> dict[str, object]:
    condition = ready_condition(status_of(cluster, path))
    return condition or {}


def test_a_federation_reports_ready_with_its_keys_and_last_refresh(stack: KubeStack) -> None:
    path = FEDERATIONS + "/" + CLUSTER
    wait_until(lambda: _ready(stack.cluster, path).get("status") == "True")
    status = status_of(stack.cluster, path)
    published = {key.kid for key in stack.issuer.tokens.keys}
    assert {key["kid"] for key in status["keys"]} == published
    assert all(key["kty"] == "RSA" and key["thumbprint"] for key in status["keys"])
    assert status["lastRefreshTime"].endswith("Z")
    assert _ready(stack.cluster, path)["reason"] == "KeysLoaded"
    assert _ready(stack.cluster, path)["lastTransitionTime"]


def test_an_authorization_reports_ready(stack: KubeStack) -> None:
    wait_until(lambda: _ready(stack.cluster, GRANT).get("status") == "True")
    assert _ready(stack.cluster, GRANT)["reason"] == "Valid"
    assert _ready(stack.cluster, GRANT)["observedGeneration"] == 1


def test_an_unchanged_status_is_not_written_again(stack: KubeStack) -> None:
    wait_until(lambda: _ready(stack.cluster, GRANT).get("status") == "True")
    writes = stack.cluster.count("PATCH", GRANT + "/status")
    time.sleep(1.5)  # three status rounds of the test settings
    assert stack.cluster.count("PATCH", GRANT + "/status") == writes


def test_an_authorization_naming_a_missing_store_or_federation_is_not_ready(stack: KubeStack) -> None:
    stack.cluster.create(
        AUTHORIZATIONS, authorization("to-nowhere", stores=["vault-gone"], federation="gone")
    )
    path = AUTHORIZATIONS + "/to-nowhere"
    wait_until(lambda: _ready(stack.cluster, path).get("status") == "False")
    message = str(_ready(stack.cluster, path)["message"])
    assert "vault-gone" in message
    assert "'gone'" in message
    assert _ready(stack.cluster, path)["reason"] == "InvalidReference"


def test_a_federation_whose_keys_cannot_be_fetched_is_not_ready(stack: KubeStack) -> None:
    manifest = stack.issuer.federation_manifest("unreachable")
    manifest["spec"]["url"] = "https://127.0.0.1:1"
    stack.cluster.create(FEDERATIONS, manifest)
    path = FEDERATIONS + "/unreachable"
    wait_until(lambda: _ready(stack.cluster, path).get("status") == "False", timeout=10)
    assert _ready(stack.cluster, path)["reason"] == "KeysUnavailable"
    assert status_of(stack.cluster, path)["keys"] == []
    # What an operator needs, not how cluster-main's network answers that address.
    wait_until(lambda: "could not be fetched" in str(_ready(stack.cluster, path).get("message")), timeout=10)
    message = str(_ready(stack.cluster, path)["message"])
    assert "Refused" not in message
    assert "127.0.0.1" not in message


def test_a_rejected_authorization_says_why(stack: KubeStack) -> None:
    broken = authorization("broken")
    broken["spec"]["subject"]["oidc"]["subject"] = "not-a-service-account"
    stack.cluster.create(AUTHORIZATIONS, broken)
    path = AUTHORIZATIONS + "/broken"
    wait_until(lambda: _ready(stack.cluster, path).get("reason") == "Rejected")
    assert "system:serviceaccount" in str(_ready(stack.cluster, path)["message"])


def test_nothing_is_written_while_another_replica_holds_the_lease(
    tmp_path: Path, cluster: EmulatedCluster
) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cluster.create(
        LEASE,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "esi-federation-status", "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": "other-replica", "leaseDurationSeconds": 3600, "renewTime": now},
        },
    )
    with kube_stack(tmp_path, cluster=cluster) as running:
        time.sleep(1.5)  # three status rounds of the test settings
        assert cluster.count("PATCH", GRANT + "/status") == 0
        assert lease_holder(cluster) == "other-replica"
        assert running.source.status_writer.writes == 0
        # The other replica stops renewing: its lease runs out and this worker takes over.
        cluster.patch(
            LEASE + "/esi-federation-status", {"spec": {"renewTime": "2000-01-01T00:00:00.000000Z"}}
        )
        wait_until(lambda: cluster.count("PATCH", GRANT + "/status") >= 1)
        assert lease_holder(cluster) == running.source.status_writer.lease.identity


def test_only_the_lease_holder_writes_and_another_worker_takes_over(tmp_path: Path, stack: KubeStack) -> None:
    first = stack.source.status_writer
    wait_until(lambda: lease_holder(stack.cluster) == first.lease.identity)
    settings = Settings(
        kubernetes=True,
        kubeconfig=stack.cluster.write_kubeconfig(tmp_path / "second-kubeconfig"),
        lease_namespace=LEASE_NAMESPACE,
        lease_duration=3.0,
        status_interval=0.5,
    )
    second_app = create_app(settings)
    second = second_app.extensions["esi.source"]
    try:
        assert second_app.extensions["esi.service"].holder.wait_ready(10)
        stack.cluster.create(AUTHORIZATIONS, authorization("written-by-the-holder"))
        path = AUTHORIZATIONS + "/written-by-the-holder"
        wait_until(lambda: _ready(stack.cluster, path).get("status") == "True")
        time.sleep(1.0)
        assert second.status_writer.writes == 0
        assert not second.status_writer.lease.held
        assert lease_holder(stack.cluster) == first.lease.identity

        stack.source.stop()
        wait_until(lambda: lease_holder(stack.cluster) == second.status_writer.lease.identity, timeout=10)
        stack.cluster.create(AUTHORIZATIONS, authorization("written-after-the-takeover"))
        taken_over = AUTHORIZATIONS + "/written-after-the-takeover"
        wait_until(lambda: _ready(stack.cluster, taken_over).get("status") == "True")
        assert second.status_writer.writes >= 1
    finally:
        stop_app(second_app)


def test_two_federations_publishing_one_key_both_say_so(stack: KubeStack) -> None:
    path = FEDERATIONS + "/" + CLUSTER
    wait_until(lambda: _ready(stack.cluster, path).get("status") == "True")
    stack.cluster.create(FEDERATIONS, stack.issuer.federation_manifest("alpha-copy"))
    copy = FEDERATIONS + "/alpha-copy"
    for each, other in ((path, "alpha-copy"), (copy, CLUSTER)):
        wait_until(lambda each=each: _ready(stack.cluster, each).get("reason") == "DuplicateKey", timeout=10)
        assert _ready(stack.cluster, each)["status"] == "False"
        assert other in str(_ready(stack.cluster, each)["message"])


def test_a_broken_key_set_is_reported_on_its_own_federation_and_status_goes_on(stack: KubeStack) -> None:
    with ClientClusterIssuer(TokenIssuer("https://nested.example")) as nested:
        nested.set_jwks_behaviour(JwksBehaviour(body=b'{"keys": [' + b"[" * 5000 + b"]" * 5000 + b"]}"))
        stack.cluster.create(FEDERATIONS, nested.federation_manifest("nested"))
        path = FEDERATIONS + "/nested"
        wait_until(lambda: "nested too deeply" in str(_ready(stack.cluster, path).get("message")), timeout=10)
        assert _ready(stack.cluster, path)["reason"] == "KeysUnavailable"
        # The writer is alive: a later change to another object is still reported.
        stack.cluster.create(AUTHORIZATIONS, authorization("later", stores=["vault-gone"]))
        wait_until(lambda: _ready(stack.cluster, AUTHORIZATIONS + "/later").get("status") == "False")
        assert stack.fetch(stack.mint()).status_code == 200


def test_a_store_whose_check_breaks_never_stops_the_other_statuses(
    stack: KubeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> str | None:
        raise RuntimeError("a provider's validation bug")

    monkeypatch.setattr("federation.kube.status.store_problem", broken)
    stack.cluster.create(AUTHORIZATIONS, authorization("after-the-bug", stores=["vault-gone"]))
    path = AUTHORIZATIONS + "/after-the-bug"
    wait_until(lambda: _ready(stack.cluster, path).get("status") == "False")
    assert "vault-gone" in str(_ready(stack.cluster, path)["message"])
    assert stack.source.status_writer.failures == 0
