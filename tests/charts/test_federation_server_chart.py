"""What charts/esi-federation-server renders: the server in Kubernetes mode, its RBAC, TLS three ways."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import pytest
from cryptography import x509

from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    SERVER_CHART,
    cli_flags,
    kinds,
    notes,
    one,
    render,
    unaccepted_args,
)


def server_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The one container of the server's Deployment."""
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def rules_by_resource(cluster_role: dict[str, Any]) -> dict[str, set[str]]:
    """``group/resource`` -> the verbs granted on it."""
    granted: dict[str, set[str]] = {}
    for rule in cluster_role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return granted


def test_default_render_is_deployment_service_pdb_rbac_tls_secret_and_service_account() -> None:
    assert kinds(render(SERVER_CHART)) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "Pod",  # the `helm test` hook
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]


def test_the_server_runs_two_replicas_in_kubernetes_mode_with_the_design_flags() -> None:
    objects = render(SERVER_CHART)
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    assert server_container(objects)["args"] == [
        "serve",
        "--kubernetes",
        "--bind",
        "0.0.0.0:8443",
        "--tls-cert",
        "/tls/tls.crt",
        "--tls-key",
        "/tls/tls.key",
        "--audience",
        "esi-federation",
        "--max-token-lifetime",
        "1h",
        "--rate-limit",
        "50",
        "--store-cache-ttl",
        "3s",
        "--workers",
        "2",
        "--threads",
        "8",
        "--log-level",
        "info",
    ]


def test_server_values_reach_the_command_line() -> None:
    values = {
        "server": {
            "audience": "esi-prod",
            "allowExtraAudiences": True,
            "maxTokenLifetime": "30m",
            "rateLimit": 12.5,
            "storeCacheTTL": "5s",
            "workers": 4,
            "threads": 16,
            "logLevel": "debug",
        }
    }
    args = server_container(render(SERVER_CHART, values))["args"]
    assert " ".join(args).endswith(
        "--audience esi-prod --allow-extra-audiences --max-token-lifetime 30m --rate-limit 12.5"
        " --store-cache-ttl 5s --workers 4 --threads 16 --log-level debug"
    )


@pytest.mark.parametrize(
    "values",
    [{}, {"server": {"allowExtraAudiences": True, "logLevel": "warning"}}],
    ids=["default", "extra-audiences"],
)
def test_the_command_line_is_accepted_by_esi_federation_serve(values: dict[str, Any]) -> None:
    args = server_container(render(SERVER_CHART, values))["args"]
    assert args[0] == "serve"
    assert unaccepted_args(args, cli_flags("esi-federation", "serve")) == []


def test_the_cluster_role_reads_crs_stores_secrets_and_configmaps_and_writes_only_their_status() -> None:
    granted = rules_by_resource(one(render(SERVER_CHART), "ClusterRole"))
    read = {"get", "list", "watch"}
    assert granted == {
        "identity.federation.external-secrets.io/kubernetesfederations": read,
        "identity.federation.external-secrets.io/kubernetesfederations/status": {"get", "update", "patch"},
        "federation.external-secrets.io/authorizations": read,
        "federation.external-secrets.io/authorizations/status": {"get", "update", "patch"},
        "external-secrets.io/clustersecretstores": read,
        "generators.external-secrets.io/passwords": read,
        "generators.external-secrets.io/uuids": read,
        "generators.external-secrets.io/fakes": read,
        "generators.external-secrets.io/vaultdynamicsecrets": read,
        "federation.external-secrets.io/authorizedidentities": {"get", "list", "create", "update"},
        "/secrets": read,
        "/configmaps": read,
    }


def test_the_status_lease_is_granted_only_in_the_release_namespace() -> None:
    objects = render(SERVER_CHART)
    role = one(objects, "Role")
    binding = one(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert rules_by_resource(role) == {"coordination.k8s.io/leases": {"create", "get", "update"}}
    # Reading and renewing: the server's own Lease only, never another controller's leader election.
    named = [rule for rule in role["rules"] if {"get", "update"} & set(rule["verbs"])]
    assert named
    assert all(rule.get("resourceNames") == ["esi-federation-status"] for rule in named)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}
    ]


def test_the_binding_gives_the_cluster_role_to_the_pods_service_account() -> None:
    objects = render(SERVER_CHART)
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}
    ]
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account


def test_generated_certificate_covers_the_public_host_and_the_service() -> None:
    objects = render(SERVER_CHART)
    secret = one(objects, "Secret")
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    service = one(objects, "Service")["metadata"]["name"]
    assert "esi-federation.cluster-main.example.com" in names
    assert f"{service}.{RELEASE_NAMESPACE}.svc" in names


def test_cert_manager_mode_renders_issuer_and_certificate_instead_of_a_secret() -> None:
    objects = render(SERVER_CHART, {"tls": {"certManager": {"enabled": True}}})
    assert "Secret" not in kinds(objects)
    certificate = one(objects, "Certificate")
    assert certificate["spec"]["issuerRef"]["name"] == one(objects, "Issuer")["metadata"]["name"]
    assert "esi-federation.cluster-main.example.com" in certificate["spec"]["dnsNames"]
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == certificate["spec"]["secretName"] for v in volumes)


def test_existing_secret_mode_renders_no_tls_objects() -> None:
    objects = render(SERVER_CHART, {"tls": {"existingSecret": "federation-tls"}})
    assert not {"Secret", "Certificate", "Issuer"} & set(kinds(objects))


def test_autoscaling_replaces_the_fixed_replica_count() -> None:
    objects = render(SERVER_CHART, {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6}})
    hpa = one(objects, "HorizontalPodAutoscaler")
    deployment = one(objects, "Deployment")
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)


def test_the_ingress_sends_the_public_host_to_the_https_service_port() -> None:
    objects = render(SERVER_CHART, {"ingress": {"enabled": True, "className": "nginx"}})
    ingress = one(objects, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "esi-federation.cluster-main.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": one(objects, "Service")["metadata"]["name"], "port": {"name": "https"}}
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"


def test_the_service_monitor_scrapes_metrics_over_https() -> None:
    objects = render(SERVER_CHART, {"metrics": {"serviceMonitor": {"enabled": True}}})
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("https", "/metrics", "https")
    assert endpoint["tlsConfig"]["ca"]["secret"] == {
        "name": one(objects, "Secret")["metadata"]["name"],
        "key": "ca.crt",
    }


def test_cert_manager_and_an_existing_secret_together_are_refused() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="mutually exclusive"):
        render(SERVER_CHART, {"tls": {"existingSecret": "federation-tls", "certManager": {"enabled": True}}})


def test_notes_tell_how_to_hand_the_ca_to_client_clusters() -> None:
    text = notes(SERVER_CHART)
    assert "federation.serverCA" in text
    assert "kubectl apply -f examples/cluster-main/client-cluster-alpha.yaml" in text
    assert "esi-federation register --kubeconfig" in text


def test_the_network_policy_admits_the_https_port_and_leaves_egress_open_by_default() -> None:
    objects = render(SERVER_CHART)
    policy = one(objects, "NetworkPolicy")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "https", "protocol": "TCP"}]}]


def test_listed_egress_rules_restrict_egress_to_them_and_dns() -> None:
    rule = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 8200, "protocol": "TCP"}]}
    values = {"networkPolicy": {"egress": [rule], "ingressFrom": [{"namespaceSelector": {}}]}}
    policy = one(render(SERVER_CHART, values), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, listed = policy["spec"]["egress"]
    assert {port["port"] for port in dns["ports"]} == {53}
    assert listed == rule
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]


def test_the_network_policy_can_be_turned_off() -> None:
    assert "NetworkPolicy" not in kinds(render(SERVER_CHART, {"networkPolicy": {"enabled": False}}))


def test_only_the_server_container_gets_an_api_token_at_the_in_cluster_path() -> None:
    spec = one(render(SERVER_CHART), "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kube-api-access")
    assert mount == {
        "name": "kube-api-access",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    volume = next(v for v in spec["volumes"] if v["name"] == "kube-api-access")
    files = {
        item.get("path") or entry["serviceAccountToken"]["path"]
        for entry in volume["projected"]["sources"]
        for item in (next(iter(entry.values())).get("items") or [{}])
    }
    assert files == {"token", "ca.crt", "namespace"}
