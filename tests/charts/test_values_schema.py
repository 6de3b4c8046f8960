"""values.schema.json of both charts: typos and wrong types fail the render instead of being ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.charts.helpers_rendering import SERVER_CHART, WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES, merge, render

BAD_WEBHOOK_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"replicaCont": 3}, "replicaCont"),
    ({"federation": {"serverUrl": "https://x.example.com"}}, "serverUrl"),
    ({"tls": {"certmanager": {"enabled": True}}}, "certmanager"),
    ({"webhook": {"failurePolicy": "fail"}}, "failurePolicy"),
    ({"webhook": {"timeoutSeconds": "5"}}, "timeoutSeconds"),
    ({"webhook": {"excludedNamespaces": "istio-system"}}, "excludedNamespaces"),
    ({"replicaCount": "2"}, "replicaCount"),
    ({"federation": {"serverURL": "http://esi-federation.example.com"}}, "serverURL"),
    ({"federation": {"tokenExpirationSeconds": 60}}, "tokenExpirationSeconds"),
    ({"initContainer": {"resources": {"limits": {"memory": "lots"}}}}, "memory"),
    ({"tls": {"certManager": {"enabled": "yes"}}}, "enabled"),
]

BAD_SERVER_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"sever": {"audience": "x"}}, "sever"),
    ({"server": {"rateLimt": 10}}, "rateLimt"),
    ({"server": {"rateLimit": "fast"}}, "rateLimit"),
    ({"server": {"workers": 0}}, "workers"),
    ({"server": {"maxTokenLifetime": "an hour"}}, "maxTokenLifetime"),
    ({"server": {"logLevel": "verbose"}}, "logLevel"),
    ({"tls": {"existingSecret": 42}}, "existingSecret"),
    ({"ingress": {"enabled": True, "hosts": [{"host": "Not A Host", "paths": []}]}}, "host"),
    ({"autoscaling": {"enable": True}}, "enable"),
    ({"rbac": {"secretNamespaces": ["team-a"]}}, "secretNamespaces"),
]


@pytest.mark.parametrize(
    ("values", "named"), BAD_WEBHOOK_VALUES, ids=[named for _, named in BAD_WEBHOOK_VALUES]
)
def test_bad_webhook_values_fail_the_render(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=named):
        render(WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, values))


@pytest.mark.parametrize(
    ("values", "named"), BAD_SERVER_VALUES, ids=[named for _, named in BAD_SERVER_VALUES]
)
def test_bad_server_values_fail_the_render(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=named):
        render(SERVER_CHART, values)


@pytest.mark.parametrize(
    ("chart", "values"),
    [(WEBHOOK_CHART, merge(WEBHOOK_REQUIRED_VALUES, {"replicaCont": 3})), (SERVER_CHART, {"sever": {}})],
    ids=["webhook", "server"],
)
def test_lint_reports_a_misspelt_key_as_an_error(chart: Path, values: dict[str, Any]) -> None:
    report = helm_python.lint(str(chart), values, strict=True, namespace="esi-system")
    assert any("additional properties" in error for error in report["errors"])


@pytest.mark.parametrize("chart", [WEBHOOK_CHART, SERVER_CHART], ids=["webhook", "server"])
def test_the_default_values_satisfy_the_schema(chart: Path) -> None:
    with helm_python.Chart.load(str(chart)) as loaded:
        loaded.validate_schema(loaded.values)
        assert loaded.schema["additionalProperties"] is False
