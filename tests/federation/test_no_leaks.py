"""No secret value and no token reaches any log line; every request writes exactly one audit line."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from federation.logs import JsonFormatter
from tests.federation.helpers_requests import PASSWORD, SERVICE_A, post_secrets
from tests.helpers_stack import FederationStack, running_stack


def _requests_to_send(stack: FederationStack) -> list[tuple[str, dict[str, Any]]]:
    """(token or "", keyword arguments of post_secrets) for a mix of good and bad requests."""
    good = stack.mint(pod_name="prometheus-0")
    expired = stack.mint(now=1_600_000_000)
    stranger = stack.mint(service_account="grafana")
    tampered = good[:-6] + "AAAAAA"
    return [
        (good, {"secrets": [PASSWORD, SERVICE_A, {"store": "vault-prod", "key": "db-credentials"}]}),
        (good, {"body": {"caCert": stack.issuer.ca_pem, "cluster": stack.cluster, "secrets": [PASSWORD]}}),
        (expired, {}),
        (tampered, {}),
        (stranger, {"secrets": [PASSWORD]}),
        (good, {"secrets": [{"store": "vault-prod", "key": "missing"}]}),
        (good, {"body": {"secrets": []}}),
        (good, {"data": b"{broken"}),
        (good, {"data": b"x" * (70 * 1024)}),
        (good, {"headers": {"Content-Type": "text/plain"}}),
        ("", {}),
        (good, {"headers": {"Authorization": f"Basic {good}"}}),
    ]


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    with running_stack(tmp_path) as running:
        yield running


def test_no_value_and_no_token_is_logged_and_each_request_is_audited_once(
    stack: FederationStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent_ids, tokens = [], set()
    with requests.Session() as session:
        for token, options in _requests_to_send(stack):
            request_id = uuid.uuid4().hex
            sent_ids.append(request_id)
            tokens.add(token)
            headers = {"X-Request-Id": request_id, **options.pop("headers", {})}
            post_secrets(stack, token or None, headers=headers, session=session, **options)
        whoami = session.get(
            stack.url + "/v1/whoami",
            headers={"Authorization": f"Bearer {stack.mint()}", "X-Request-Id": "whoami-1"},
            verify=str(stack.server_ca_file),
            timeout=15,
        )
        assert whoami.status_code == 200
    sent_ids.append("whoami-1")

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    lines += [record.getMessage() for record in caplog.records]
    everything = "\n".join(lines)
    assert "audit" in everything  # the capture did see the server's records
    for value in stack.values.values():
        assert value not in everything
    for token in tokens - {""}:
        for part in token.split("."):
            assert part not in everything

    entries = [json.loads(line) for line in lines if line.startswith("{")]
    audits = [entry for entry in entries if entry.get("event") == "audit"]
    per_request = Counter(audit["request_id"] for audit in audits)
    assert per_request == Counter(sent_ids)
    decisions = [audit["decision"] for audit in audits]
    assert decisions.count("allowed") == 3
    assert {"unauthenticated", "denied", "not_found", "invalid"} <= set(decisions)
    first = audits[0]
    assert first["subject"] == "system:serviceaccount:monitoring:prometheus-esi-client"
    assert first["cluster"] == stack.cluster
    assert first["pod"] == "prometheus-0"
    assert first["status"] == 200
    assert first["keys"] == [
        "vault-prod:db-credentials#password",
        "vault-prod:api-keys#service-a-token",
        "vault-prod:db-credentials",
    ]
    assert isinstance(first["latency_ms"], float | int)
    assert first["time"].startswith("20")
    assert first["stores"] == ["vault-prod"]


def test_health_and_metrics_requests_write_no_audit_line(
    stack: FederationStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/healthz", "/readyz", "/metrics"):
        requests.get(stack.url + path, verify=str(stack.server_ca_file), timeout=15)
    assert not [record for record in caplog.records if getattr(record, "event", None) == "audit"]
