"""The dashboard's and the alerts' queries name metrics and labels that the running servers export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hack.admission import pod_create_review
from tests.charts.helpers_rendering import (
    SERVER_CHART,
    WEBHOOK_CHART,
    WEBHOOK_REQUIRED_VALUES,
    merge,
    one,
    render,
)
from tests.federation.helpers_requests import get, post_secrets
from tests.helpers_stack import FederationStack, running_stack
from webhook.app import create_app as create_webhook_app
from webhook.settings import Settings as WebhookSettings

DASHBOARD = SERVER_CHART / "dashboards" / "esi-federation.json"
_METRIC = re.compile(r"\b(esi_[a-z0-9_]+)\b")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_SELECTOR = re.compile(r"\{([^}]*)\}")
# The series each metric type adds to its family name.
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def series_labels(exposition: str) -> dict[str, set[str]]:
    """Every series name a /metrics page defines, with the labels its samples carry."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            series.setdefault(family.name + suffix, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def dashboard_queries() -> list[str]:
    """The PromQL of every panel target of the dashboard."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def rule_queries(objects: Iterable[dict[str, Any]]) -> list[str]:
    """The PromQL of every alert of the rendered PrometheusRule."""
    rule = one(list(objects), "PrometheusRule")
    return [entry["expr"] for group in rule["spec"]["groups"] for entry in group["rules"]]


def labels_used(query: str) -> set[str]:
    """Labels a query groups by or matches on (``le`` belongs to every histogram bucket)."""
    labels = {label.strip() for clause in _BY.findall(query) for label in clause.split(",") if label.strip()}
    labels |= {name for selector in _SELECTOR.findall(query) for name in _MATCHER.findall(selector)}
    return labels - {"le"}


def _answered_metrics(stack: FederationStack) -> str:
    """The /metrics page after an allowed, an unauthenticated and a rate-limited request."""
    token = stack.mint()
    assert post_secrets(stack, token).status_code == 200
    assert post_secrets(stack, None).status_code == 401
    statuses = [post_secrets(stack, token).status_code for _ in range(5)]
    assert 429 in statuses, statuses
    page = get(stack, "/metrics")
    assert page.status_code == 200
    return page.text


@pytest.fixture
def exported(tmp_path: Path) -> dict[str, set[str]]:
    """Series of both servers after each has answered something (labelled series appear only then)."""
    # A rate limit low enough that a few requests in a row meet it, so its labelled series exists too.
    with running_stack(tmp_path, rate_limit=1.0, workers=1) as stack:
        federation = _answered_metrics(stack)
    settings = WebhookSettings(cluster_name="client-cluster-alpha", server_url="https://esi.example.com")
    client = create_webhook_app(settings).test_client()
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app"}]}}
    assert client.post("/mutate", json=pod_create_review(pod, namespace="default")).status_code == 200
    webhook = client.get("/metrics").get_data(as_text=True)
    return series_labels(federation) | series_labels(webhook)


def queries() -> dict[str, list[str]]:
    server_rule = render(SERVER_CHART, {"metrics": {"prometheusRule": {"enabled": True}}})
    webhook_values = merge(WEBHOOK_REQUIRED_VALUES, {"metrics": {"prometheusRule": {"enabled": True}}})
    return {
        "dashboard": dashboard_queries(),
        "server-alerts": rule_queries(server_rule),
        "webhook-alerts": rule_queries(render(WEBHOOK_CHART, webhook_values)),
    }


@pytest.mark.parametrize("source", ["dashboard", "server-alerts", "webhook-alerts"])
def test_every_query_names_exported_metrics_and_labels(source: str, exported: dict[str, set[str]]) -> None:
    found = queries()[source]
    assert len(found) >= 2, source
    for query in found:
        metrics = set(_METRIC.findall(query))
        assert metrics, f"{source}: {query!r} names no esi_ metric"
        unknown = sorted(metrics - exported.keys())
        assert unknown == [], f"{source}: {query!r} names series no server exports"
        known_labels = set().union(*(exported[name] for name in metrics))
        assert labels_used(query) <= known_labels, f"{source}: {query!r} uses labels the series lack"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    joined = "\n".join(dashboard_queries())
    for wanted in (
        "esi_federation_decisions_total",
        "esi_federation_request_duration_seconds_bucket",
        "esi_federation_jwks_stale",
        "esi_federation_store_reads_total",
        "esi_federation_rate_limited_total",
        "esi_webhook_reviews_total",
    ):
        assert wanted in joined


def test_the_dashboard_config_map_carries_the_json_and_the_sidecar_label() -> None:
    values = {"metrics": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "ESI"}}}}
    config_map = next(
        obj
        for obj in render(SERVER_CHART, values)
        if obj["kind"] == "ConfigMap" and "dashboard" in obj["metadata"]["name"]
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ESI"}
    assert json.loads(config_map["data"]["esi-federation.json"]) == json.loads(DASHBOARD.read_text())


def test_monitoring_objects_are_off_by_default() -> None:
    kinds = {obj["kind"] for obj in render(SERVER_CHART)}
    assert "PrometheusRule" not in kinds
    assert "ConfigMap" not in kinds


def test_alerts_name_what_the_issue_asks_for() -> None:
    server = {
        entry["alert"]
        for entry in _rules(render(SERVER_CHART, {"metrics": {"prometheusRule": {"enabled": True}}}))
    }
    assert {"EsiFederationJwksStale", "EsiFederationStoreErrors", "EsiFederationDenialSpike"} <= server
    webhook_values = merge(WEBHOOK_REQUIRED_VALUES, {"metrics": {"prometheusRule": {"enabled": True}}})
    assert "EsiWebhookBadReviews" in {
        entry["alert"] for entry in _rules(render(WEBHOOK_CHART, webhook_values))
    }


def test_the_denial_threshold_is_a_value() -> None:
    values = {"metrics": {"prometheusRule": {"enabled": True, "denialRatio": 0.5}}}
    spike = next(
        entry
        for entry in _rules(render(SERVER_CHART, values))
        if entry["alert"] == "EsiFederationDenialSpike"
    )
    assert ") > 0.5" in spike["expr"]
    assert "50%" in spike["annotations"]["summary"]


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = one(objects, "PrometheusRule")
    return [entry for group in rule["spec"]["groups"] for entry in group["rules"]]


def test_the_dashboard_can_live_in_grafanas_namespace() -> None:
    values = {"metrics": {"dashboard": {"enabled": True, "namespace": "monitoring"}}}
    config_map = one(render(SERVER_CHART, values), "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
