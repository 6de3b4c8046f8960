"""Both charts, every TLS source and every optional object: lint, Kubernetes schemas, internal references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from hack.certs import create_ca
from tests.charts.helpers_rendering import (
    FOREIGN_KINDS,
    SERVER_CHART,
    SERVER_VARIANTS,
    WEBHOOK_CHART,
    crds,
    render,
    validate_strict,
    webhook_variants,
)

KUBE_VERSIONS = ["1.29", "1.33"]
CA_PEM = create_ca("existing-webhook-ca").cert_pem.decode()
CASES: list[tuple[str, Path, dict[str, Any]]] = [
    *((f"webhook-{name}", WEBHOOK_CHART, values) for name, values in webhook_variants(CA_PEM).items()),
    *((f"server-{name}", SERVER_CHART, values) for name, values in SERVER_VARIANTS.items()),
]
CASE_IDS = [case[0] for case in CASES]


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod templates of every workload rendered."""
    return [obj["spec"]["template"]["spec"] for obj in objects if obj["kind"] == "Deployment"]


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_every_rendered_manifest_validates_strictly(
    case: str, chart: Path, values: dict[str, Any], kube_version: str
) -> None:
    validated = []
    for obj in render(chart, values):
        if (obj["apiVersion"], obj["kind"]) in FOREIGN_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                validate_strict(obj, kube_version)
            continue
        validate_strict(obj, kube_version)
        validated.append(obj["kind"])
    assert "Deployment" in validated, case


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_the_crds_validate_strictly(kube_version: str) -> None:
    definitions = crds(SERVER_CHART)
    assert len(definitions) == 3
    for definition in definitions:
        validate_strict(definition, kube_version)


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_chart_lints_strictly_without_errors(case: str, chart: Path, values: dict[str, Any]) -> None:
    report = helm_python.lint(str(chart), values, strict=True, namespace="esi-system", kube_version="v1.33.0")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert report["errors"] == [], case
    assert problems == [], case


@pytest.mark.parametrize(
    ("chart", "values_file"),
    [(WEBHOOK_CHART, WEBHOOK_CHART / "ci" / "required-values.yaml"), (SERVER_CHART, None)],
    ids=["webhook", "server"],
)
def test_plain_strict_lint_with_the_shipped_values_reports_nothing(
    chart: Path, values_file: Path | None
) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm_python.lint(str(chart), values, strict=True)
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_every_volume_mount_names_a_volume(case: str, chart: Path, values: dict[str, Any]) -> None:
    specs = pod_specs(render(chart, values))
    assert specs, case
    for spec in specs:
        volumes = {volume["name"] for volume in spec.get("volumes", [])}
        for container in spec["containers"] + spec.get("initContainers", []):
            mounted = {mount["name"] for mount in container.get("volumeMounts", [])}
            assert mounted, f"{case}: {container['name']} mounts nothing"
            assert mounted <= volumes, f"{case}: {container['name']} mounts {sorted(mounted - volumes)}"


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_the_tls_volume_reads_the_secret_that_the_chart_names(
    case: str, chart: Path, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    (spec,) = pod_specs(objects)
    tls_volume = next(volume for volume in spec["volumes"] if volume["name"] == "tls")
    secret_name = tls_volume["secret"]["secretName"]
    rendered_secrets = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "Secret"}
    certificates = {obj["spec"]["secretName"] for obj in objects if obj["kind"] == "Certificate"}
    existing = values.get("tls", {}).get("existingSecret")
    assert secret_name in rendered_secrets | certificates | {existing}, case


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_pods_and_containers_are_hardened(case: str, chart: Path, values: dict[str, Any]) -> None:
    (spec,) = pod_specs(render(chart, values))
    assert spec["securityContext"]["runAsNonRoot"] is True, case
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_probes_use_healthz_and_readyz_over_https_on_8443(
    case: str, chart: Path, values: dict[str, Any]
) -> None:
    (spec,) = pod_specs(render(chart, values))
    (container,) = spec["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"https": values.get("containerPort", 8443)}, case
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}


@pytest.mark.parametrize(("case", "chart", "values"), CASES, ids=CASE_IDS)
def test_the_service_and_the_pdb_select_the_deployments_pods(
    case: str, chart: Path, values: dict[str, Any]
) -> None:
    objects = render(chart, values)
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for obj in objects:
        if obj["kind"] == "Service":
            assert obj["spec"]["selector"].items() <= pod_labels.items(), case
            assert obj["spec"]["ports"][0]["targetPort"] == "https"
        if obj["kind"] == "PodDisruptionBudget":
            assert obj["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), case
            assert obj["spec"]["minAvailable"] == 1
