"""Kubernetes mode against kmock's emulator: the configuration is listed, watched, and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from federation.app import stop_app
from hack.client_issuer import ClientClusterIssuer
from hack.sa_tokens import TokenIssuer
from tests.federation.kube.helpers_kube import (
    AUTHORIZATIONS,
    FEDERATIONS,
    SECRETS,
    STORES_V1,
    STORES_V1BETA1,
    EmulatedCluster,
    KubeStack,
    config_map,
    kube_stack,
    secret,
    wait_until,
)
from tests.helpers_stack import AUDIENCE, STORE, authorization, fake_store

pytestmark = pytest.mark.slow

BETA = "client-cluster-beta"
BETA_ISSUER = "https://beta.clusters.example.test"


def test_a_fetch_works_in_kubernetes_mode(stack: KubeStack) -> None:
    answer = stack.fetch(stack.mint())
    assert answer.status_code == 200, answer.text
    assert answer.json()["secrets"][0]["value"] == stack.values["password"]


def test_the_server_is_ready_only_after_the_first_lists(stack: KubeStack) -> None:
    assert requests.get(stack.url + "/readyz", verify=str(stack.server_ca_file), timeout=5).status_code == 200
    assert stack.source.listed
    for path in (FEDERATIONS, AUTHORIZATIONS, STORES_V1, SECRETS):
        assert stack.cluster.count("GET", path, watch=False) >= 1


def test_nothing_is_loaded_while_a_type_cannot_be_listed(tmp_path: Path, cluster: EmulatedCluster) -> None:
    # Neither ClusterSecretStore version is served: the server must not go ready on a partial view.
    from federation.app import create_app  # noqa: PLC0415
    from federation.settings import Settings  # noqa: PLC0415

    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    app = create_app(Settings(kubernetes=True, kubeconfig=kubeconfig, lease_namespace="esi-system"))
    try:
        holder = app.extensions["esi.service"].holder
        assert not holder.wait_ready(1.5)
        cluster.serve_stores("v1")
        assert holder.wait_ready(10)
    finally:
        stop_app(app)


def test_deleting_the_authorization_gives_403_within_5_seconds(stack: KubeStack) -> None:
    token = stack.mint()
    assert stack.fetch(token).status_code == 200
    stack.cluster.delete(AUTHORIZATIONS + "/allow-alpha-monitoring")
    took = wait_until(lambda: stack.fetch(token).status_code == 403, timeout=5)
    assert took < 5


def test_a_changed_authorization_takes_effect_without_a_restart(stack: KubeStack) -> None:
    token = stack.mint()
    stack.cluster.patch(
        AUTHORIZATIONS + "/allow-alpha-monitoring", {"spec": {"allowedSecrets": ["api-keys"]}}
    )
    wait_until(lambda: stack.fetch(token).status_code == 403)
    answer = stack.fetch(token, [{"store": STORE, "key": "api-keys", "property": "service-a-token"}])
    assert answer.status_code == 200, answer.text


def test_an_added_federation_is_used_without_a_restart(stack: KubeStack) -> None:
    with ClientClusterIssuer(TokenIssuer(BETA_ISSUER)) as beta:
        token = beta.mint("monitoring", "prometheus-esi-client", [AUDIENCE])
        assert stack.fetch(token).status_code == 401
        stack.cluster.create(FEDERATIONS, beta.federation_manifest(BETA, audiences=[AUDIENCE]))
        stack.cluster.create(
            AUTHORIZATIONS, authorization("allow-beta-monitoring", federation=BETA, issuer=BETA_ISSUER)
        )
        body = {
            "cluster": BETA,
            "secrets": [{"store": STORE, "key": "db-credentials", "property": "password"}],
        }

        def beta_is_served() -> bool:
            answer = requests.post(
                stack.url + "/v1/secrets",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                verify=str(stack.server_ca_file),
                timeout=10,
            )
            return answer.status_code == 200

        wait_until(beta_is_served)


def test_a_dropped_watch_is_resumed(stack: KubeStack) -> None:
    wait_until(lambda: stack.cluster.watching(AUTHORIZATIONS) == 1)
    watches = stack.cluster.count("GET", AUTHORIZATIONS, watch=True)
    stack.cluster.drop_watches()
    wait_until(lambda: stack.cluster.count("GET", AUTHORIZATIONS, watch=True) > watches)
    wait_until(lambda: stack.cluster.watching(AUTHORIZATIONS) == 1)
    token = stack.mint()
    stack.cluster.delete(AUTHORIZATIONS + "/allow-alpha-monitoring")
    wait_until(lambda: stack.fetch(token).status_code == 403)


def test_a_watch_answered_410_gone_is_followed_by_a_new_list(stack: KubeStack) -> None:
    wait_until(lambda: stack.cluster.watching(AUTHORIZATIONS) == 1)
    lists = stack.cluster.count("GET", AUTHORIZATIONS, watch=False)
    stack.cluster.expire_next_watch(AUTHORIZATIONS)
    stack.cluster.drop_watches()
    wait_until(lambda: stack.cluster.count("GET", AUTHORIZATIONS, watch=False) > lists)
    wait_until(lambda: stack.cluster.watching(AUTHORIZATIONS) == 1)
    token = stack.mint()
    stack.cluster.delete(AUTHORIZATIONS + "/allow-alpha-monitoring")
    wait_until(lambda: stack.fetch(token).status_code == 403)


def test_a_batch_that_does_not_parse_is_rejected_and_the_last_good_one_stays(stack: KubeStack) -> None:
    token = stack.mint()
    reloads = stack.app.extensions["esi.metrics"].config_reloads.labels("error")
    before = reloads._value.get()
    broken = authorization("broken")
    broken["spec"]["subject"]["oidc"]["subject"] = "not-a-service-account"
    stack.cluster.create(AUTHORIZATIONS, broken)
    wait_until(lambda: reloads._value.get() > before)
    assert stack.fetch(token).status_code == 200
    assert any("Authorization broken" in problem for problem in stack.source.problems)
    stack.cluster.delete(AUTHORIZATIONS + "/broken")
    wait_until(lambda: not stack.source.problems)


def test_cluster_secret_stores_fall_back_to_v1beta1(tmp_path: Path, cluster: EmulatedCluster) -> None:
    with kube_stack(tmp_path, cluster=cluster, stores=STORES_V1BETA1) as running:
        answer = running.fetch(running.mint())
        assert answer.status_code == 200, answer.text
        assert running.cluster.count("GET", STORES_V1BETA1, watch=True) >= 1


def test_only_referenced_secrets_are_kept_and_a_new_reference_is_read_at_once(stack: KubeStack) -> None:
    stack.cluster.create("/api/v1/namespaces/team-a/secrets", secret("team-a", "unrelated", {"k": "v"}))
    stack.cluster.create(
        "/api/v1/namespaces/shared/secrets", secret("shared", "db", {"password": "from-a-secret"})
    )
    wait_until(lambda: stack.cluster.count("GET", SECRETS, watch=True) >= 1)
    store = fake_store("cluster-secrets", {})
    store["spec"]["provider"] = {"kubernetes": {"remoteNamespace": "shared"}}
    stack.cluster.create(STORES_V1, store)
    stack.cluster.patch(
        AUTHORIZATIONS + "/allow-alpha-monitoring",
        {"spec": {"allowedClusterSecretStores": [STORE, "cluster-secrets"]}},
    )
    token = stack.mint()
    wait_until(
        lambda: (
            stack.fetch(
                token, [{"store": "cluster-secrets", "key": "db", "property": "password"}]
            ).status_code
            == 200
        )
    )
    held = stack.app.extensions["esi.service"].holder.current.secrets
    assert ("shared", "db") in held
    assert ("team-a", "unrelated") not in held


def test_a_configmap_ca_of_a_store_is_watched_as_a_configmap(stack: KubeStack) -> None:
    ca = {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
    stack.cluster.create("/api/v1/namespaces/shared/configmaps", config_map("shared", "unrelated", ca))
    store = fake_store("cluster-secrets", {})
    ca_provider = {"type": "ConfigMap", "name": "kube-root-ca.crt", "key": "ca.crt", "namespace": "shared"}
    store["spec"]["provider"] = {
        "kubernetes": {"remoteNamespace": "shared", "server": {"caProvider": ca_provider}}
    }
    stack.cluster.create(STORES_V1, store)
    holder = stack.app.extensions["esi.service"].holder
    wait_until(lambda: "cluster-secrets" in holder.current.stores)
    assert holder.current.config_maps == {}  # referenced but absent: read once, found missing
    stack.cluster.create("/api/v1/namespaces/shared/configmaps", config_map("shared", "kube-root-ca.crt", ca))
    wait_until(lambda: ("shared", "kube-root-ca.crt") in holder.current.config_maps)
    assert holder.current.config_maps[("shared", "kube-root-ca.crt")].data["ca.crt"] == ca["ca.crt"].encode()
    assert ("shared", "unrelated") not in holder.current.config_maps
    assert ("shared", "kube-root-ca.crt") not in holder.current.secrets
