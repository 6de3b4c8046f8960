"""What charts/esi-webhook renders: the admission configuration, TLS three ways, the server's command line."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
from cryptography import x509

from hack.certs import create_ca
from tests.charts.helpers_rendering import (
    RELEASE_NAMESPACE,
    REPO_ROOT,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    cli_flags,
    kinds,
    merge,
    notes,
    one,
    render,
    unaccepted_args,
)

CA_PEM = create_ca("existing-webhook-ca").cert_pem.decode()
PROMETHEUS_POD = REPO_ROOT / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
# Flags of `serve` only: `mutate` takes the same configuration without the listener's.
LISTENER_FLAGS = {"--bind", "--tls-cert", "--tls-key", "--workers", "--threads"}


def render_webhook(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The webhook chart rendered with the required values plus ``values``."""
    return render(WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, values or {}))


def mutating_webhook(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The one webhook entry of the MutatingWebhookConfiguration."""
    (webhook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    return webhook


def container_args(objects: list[dict[str, Any]]) -> list[str]:
    """The webhook container's args."""
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container["args"]


def flag_value(args: list[str], flag: str) -> str:
    """The value that follows ``flag`` on the command line."""
    return args[args.index(flag) + 1]


def test_default_render_is_deployment_service_pdb_webhook_tls_secret_and_service_account() -> None:
    objects = render_webhook()
    assert kinds(objects) == [
        "Deployment",
        "MutatingWebhookConfiguration",
        "NetworkPolicy",
        "Pod",  # the `helm test` hook
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
    ]


def test_the_cluster_name_is_required() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"federation\.clusterName is required"):
        render(WEBHOOK_CHART)


def test_the_deployment_runs_two_spread_replicas() -> None:
    deployment = one(render_webhook(), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_webhook_pod_mounts_no_service_account_token() -> None:
    spec = one(render_webhook(), "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False


def test_client_config_points_at_the_service_and_mutate() -> None:
    objects = render_webhook()
    service = one(objects, "Service")
    client_config = mutating_webhook(objects)["clientConfig"]
    assert client_config["service"] == {
        "name": service["metadata"]["name"],
        "namespace": RELEASE_NAMESPACE,
        "path": "/mutate",
        "port": service["spec"]["ports"][0]["port"],
    }


def test_the_webhook_only_sees_pod_creation_without_side_effects() -> None:
    webhook = mutating_webhook(render_webhook())
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["matchPolicy"] == "Equivalent"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["failurePolicy"] == "Fail"


def test_failure_policy_follows_its_value() -> None:
    webhook = mutating_webhook(render_webhook({"webhook": {"failurePolicy": "Ignore"}}))
    assert webhook["failurePolicy"] == "Ignore"


def test_system_namespaces_the_release_namespace_and_extras_are_excluded() -> None:
    objects = render_webhook({"webhook": {"excludedNamespaces": ["istio-system", "kube-system"]}})
    (expression,) = mutating_webhook(objects)["namespaceSelector"]["matchExpressions"]
    expected = ["kube-system", "kube-public", "kube-node-lease", RELEASE_NAMESPACE, "istio-system"]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": expected}
    assert flag_value(container_args(objects), "--excluded-namespaces") == ",".join(expected)


def test_opt_in_mode_also_requires_the_namespace_label() -> None:
    objects = render_webhook({"webhook": {"namespaceOptIn": {"enabled": True, "labelValue": "yes"}}})
    expressions = mutating_webhook(objects)["namespaceSelector"]["matchExpressions"]
    assert expressions[0]["operator"] == "NotIn"
    assert expressions[1] == {"key": "esi.external-secrets.io/injection", "operator": "In", "values": ["yes"]}


def test_generated_ca_signs_the_serving_certificate_and_is_the_ca_bundle() -> None:
    objects = render_webhook()
    secret = one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    assert base64.b64decode(mutating_webhook(objects)["clientConfig"]["caBundle"]) == ca_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    service = one(objects, "Service")["metadata"]["name"]
    assert f"{service}.{RELEASE_NAMESPACE}.svc" in names


def test_cert_manager_mode_issues_a_certificate_and_injects_its_ca() -> None:
    objects = render_webhook({"tls": {"certManager": {"enabled": True}}})
    issuer = one(objects, "Issuer")
    certificate = one(objects, "Certificate")
    configuration = one(objects, "MutatingWebhookConfiguration")
    assert "Secret" not in kinds(objects)
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"] == {
        "name": issuer["metadata"]["name"],
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{RELEASE_NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert "caBundle" not in mutating_webhook(objects)["clientConfig"]
    service = one(objects, "Service")["metadata"]["name"]
    assert f"{service}.{RELEASE_NAMESPACE}.svc" in certificate["spec"]["dnsNames"]


def test_cert_manager_mode_with_an_issuer_ref_creates_no_issuer() -> None:
    issuer_ref = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    objects = render_webhook({"tls": {"certManager": {"enabled": True, "issuerRef": issuer_ref}}})
    assert "Issuer" not in kinds(objects)
    assert one(objects, "Certificate")["spec"]["issuerRef"] == issuer_ref


@pytest.mark.parametrize(
    "ca_bundle", [CA_PEM, base64.b64encode(CA_PEM.encode()).decode()], ids=["pem", "base64"]
)
def test_existing_secret_mode_uses_that_secret_and_the_given_ca_bundle(ca_bundle: str) -> None:
    objects = render_webhook({"tls": {"existingSecret": "webhook-tls", "caBundle": ca_bundle}})
    assert "Secret" not in kinds(objects)
    assert "Certificate" not in kinds(objects)
    assert base64.b64decode(mutating_webhook(objects)["clientConfig"]["caBundle"]).decode() == CA_PEM
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "webhook-tls", "defaultMode": 0o440}} in volumes


def test_existing_secret_without_a_ca_bundle_is_refused() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"tls\.caBundle"):
        render_webhook({"tls": {"existingSecret": "webhook-tls"}})


def test_cert_manager_and_an_existing_secret_together_are_refused() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="mutually exclusive"):
        render_webhook(
            {"tls": {"existingSecret": "webhook-tls", "caBundle": CA_PEM, "certManager": {"enabled": True}}}
        )


def test_the_command_line_carries_every_configured_flag() -> None:
    assert container_args(render_webhook()) == [
        "serve",
        "--bind",
        "0.0.0.0:8443",
        "--tls-cert",
        "/tls/tls.crt",
        "--tls-key",
        "/tls/tls.key",
        "--workers",
        "2",
        "--threads",
        "4",
        "--server-url",
        "https://esi-federation.cluster-main.example.com",
        "--cluster-name",
        "client-cluster-alpha",
        "--audience",
        "esi-federation",
        "--init-image",
        "ghcr.io/esi-federation/esi-init:0.1.0",
        "--token-expiration",
        "600",
        "--excluded-namespaces",
        f"kube-system,kube-public,kube-node-lease,{RELEASE_NAMESPACE}",
        "--init-cpu-request",
        "10m",
        "--init-memory-request",
        "32Mi",
        "--init-cpu-limit",
        "200m",
        "--init-memory-limit",
        "128Mi",
        "--init-run-as-user",
        "65532",
        "--init-run-as-group",
        "65532",
        "--init-image-pull-policy",
        "IfNotPresent",
        "--secrets-size-limit",
        "4Mi",
        "--log-level",
        "info",
    ]


def test_the_server_ca_is_mounted_and_named_on_the_command_line() -> None:
    objects = render_webhook(
        {
            "federation": {
                "serverCA": CA_PEM,
                "allowedServerURLs": ["https://a.example.com", "https://b.example.com"],
            }
        }
    )
    args = container_args(objects)
    ca_file = flag_value(args, "--server-ca-file")
    config_map = one(objects, "ConfigMap")
    assert config_map["data"]["ca.crt"].strip() == CA_PEM.strip()
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "server-ca"]
    assert ca_file == f"{mount['mountPath']}/ca.crt"
    assert {"name": "server-ca", "configMap": {"name": config_map["metadata"]["name"]}} in spec["volumes"]
    assert flag_value(args, "--allowed-server-urls") == "https://a.example.com,https://b.example.com"


def test_a_new_server_ca_rolls_the_webhook_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = one(render_webhook(values), "Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/server-ca"]

    other_ca = create_ca("rotated-federation-ca").cert_pem.decode()
    assert checksum({"federation": {"serverCA": CA_PEM}}) != checksum({"federation": {"serverCA": other_ca}})
    assert checksum({"federation": {"serverCA": CA_PEM}}) == checksum({"federation": {"serverCA": CA_PEM}})


def test_an_image_digest_pins_the_injected_image() -> None:
    digest = "sha256:" + "a" * 64
    args = container_args(render_webhook({"initContainer": {"image": {"digest": digest}}}))
    assert flag_value(args, "--init-image") == f"ghcr.io/esi-federation/esi-init@{digest}"


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"federation": {"serverCA": CA_PEM, "allowedServerURLs": ["https://b.example.com"]}},
        {"server": {"workers": 4, "threads": 8, "logLevel": "debug"}},
    ],
    ids=["default", "server-ca", "server-tuning"],
)
def test_the_command_line_is_accepted_by_esi_webhook_serve(values: dict[str, Any]) -> None:
    args = container_args(render_webhook(values))
    assert args[0] == "serve"
    assert unaccepted_args(args, cli_flags("esi-webhook", "serve")) == []


def test_the_chart_configuration_mutates_the_seed_prometheus_pod(tmp_path: Path) -> None:
    """The rendered flags, minus the listener's, drive `esi-webhook mutate`: the same code /mutate runs."""
    args = container_args(render_webhook({"federation": {"serverCA": CA_PEM}}))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA_PEM)
    configuration: list[str] = []
    rest = args[1:]
    while rest:
        flag, value = rest.pop(0), rest.pop(0)
        if flag not in LISTENER_FLAGS:
            configuration += [flag, str(ca_file) if flag == "--server-ca-file" else value]
    esi_webhook = str(Path(sys.executable).parent / "esi-webhook")
    result = subprocess.run(
        [esi_webhook, "mutate", "-f", str(PROMETHEUS_POD), "-o", "json", *configuration],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-800:]
    pod = json.loads(result.stdout)
    (init,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "esi-init"]
    assert init["image"] == flag_value(args, "--init-image")
    assert init["resources"]["limits"]["memory"] == flag_value(args, "--init-memory-limit")
    env = {item["name"]: item.get("value") for item in init["env"]}
    assert env["ESI_SERVER"] == flag_value(args, "--server-url")
    assert env["ESI_CLUSTER"] == flag_value(args, "--cluster-name")
    assert env["ESI_SERVER_CA"].strip() == CA_PEM.strip()


def test_notes_name_the_next_step() -> None:
    text = notes(WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES)
    assert "rollout status deployment/" in text
    assert "esi.external-secrets.io/inject" in text
    assert "client-cluster-alpha" in text


INJECT_CONDITION = (
    "has(object.metadata.annotations) && 'esi.external-secrets.io/inject' in object.metadata.annotations"
    " && object.metadata.annotations['esi.external-secrets.io/inject'] == 'true'"
)


@pytest.mark.parametrize(
    ("kube_version", "selects_by_condition"), [("v1.29.8", False), ("v1.30.0", True), ("v1.33.1", True)]
)
def test_auto_selection_uses_match_conditions_from_kubernetes_1_30(
    kube_version: str, selects_by_condition: bool
) -> None:
    webhook = mutating_webhook(render(WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES, kube_version=kube_version))
    assert "objectSelector" not in webhook
    assert webhook["failurePolicy"] == "Fail"
    if selects_by_condition:
        assert webhook["matchConditions"] == [{"name": "asks-for-injection", "expression": INJECT_CONDITION}]
    else:
        assert "matchConditions" not in webhook


def test_match_conditions_can_be_chosen_on_older_versions_that_enable_the_beta() -> None:
    values = merge(WEBHOOK_REQUIRED_VALUES, {"webhook": {"podSelection": "matchConditions"}})
    webhook = mutating_webhook(render(WEBHOOK_CHART, values, kube_version="v1.28.0"))
    assert webhook["matchConditions"][0]["expression"] == INJECT_CONDITION


@pytest.mark.parametrize("kube_version", ["v1.25.0", "v1.33.1"])
def test_object_selector_mode_sends_only_labelled_pods_on_any_version(kube_version: str) -> None:
    values = merge(
        WEBHOOK_REQUIRED_VALUES,
        {"webhook": {"podSelection": "objectSelector", "objectSelector": {"labelValue": "yes"}}},
    )
    webhook = mutating_webhook(render(WEBHOOK_CHART, values, kube_version=kube_version))
    assert webhook["objectSelector"] == {"matchLabels": {"esi.external-secrets.io/inject": "yes"}}
    assert "matchConditions" not in webhook
    assert webhook["failurePolicy"] == "Fail"


def test_all_mode_sends_every_pod_as_before() -> None:
    webhook = mutating_webhook(render_webhook({"webhook": {"podSelection": "all"}}))
    assert "matchConditions" not in webhook
    assert "objectSelector" not in webhook
    assert webhook["namespaceSelector"]["matchExpressions"][0]["operator"] == "NotIn"


def test_host_network_mode_listens_on_the_chosen_port_of_the_node() -> None:
    objects = render_webhook({"hostNetwork": True, "containerPort": 9443})
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["hostNetwork"] is True
    assert container["ports"] == [{"name": "https", "containerPort": 9443, "protocol": "TCP"}]
    assert flag_value(container["args"], "--bind") == "0.0.0.0:9443"
    assert one(objects, "Service")["spec"]["ports"][0]["targetPort"] == "https"


def test_pod_network_is_the_default() -> None:
    spec = one(render_webhook(), "Deployment")["spec"]["template"]["spec"]
    assert "hostNetwork" not in spec
    assert flag_value(container_args(render_webhook()), "--bind") == "0.0.0.0:8443"


def test_the_webhook_configuration_takes_extra_annotations_and_labels() -> None:
    values = {
        "webhook": {"annotations": {"argocd.argoproj.io/sync-wave": "1"}, "labels": {"team": "platform"}},
        "tls": {"certManager": {"enabled": True}},
    }
    metadata = one(render_webhook(values), "MutatingWebhookConfiguration")["metadata"]
    assert metadata["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    assert metadata["annotations"]["cert-manager.io/inject-ca-from"] == "esi-system/esi-esi-webhook-serving"
    assert metadata["labels"]["team"] == "platform"
    assert metadata["labels"]["app.kubernetes.io/name"] == "esi-webhook"


def test_notes_say_which_pods_reach_the_webhook() -> None:
    assert "(objectSelector)" in notes(
        WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"webhook": {"podSelection": "objectSelector"}})
    )
    text = notes(WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"webhook": {"podSelection": "all"}}))
    assert "while the webhook is down, no pod can be created" in text
    assert "esi-federation register --kubeconfig" in text


def test_the_default_network_policy_admits_the_https_port_and_denies_all_egress() -> None:
    policy = one(render_webhook(), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policy["spec"]  # Egress listed without rules: nothing may leave the pod
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "https", "protocol": "TCP"}]}]
