"""Health, readiness, metrics, the OpenAPI document and the ESI compatibility route."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from tests.federation.helpers_requests import PASSWORD, get, metric_value, post_secrets
from tests.helpers_stack import FederationStack

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("ops_routes")


@pytest.fixture(scope="module")
def openapi(shared_stack: FederationStack) -> dict[str, Any]:
    response = get(shared_stack, "/openapi.yaml")
    assert response.status_code == 200
    document: dict[str, Any] = yaml.safe_load(response.text)
    return document


def _validate(openapi: dict[str, Any], schema_name: str, instance: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_healthz_answers_ok(shared_stack: FederationStack) -> None:
    response = get(shared_stack, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ready_once_the_configuration_is_loaded(shared_stack: FederationStack) -> None:
    response = get(shared_stack, "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_answers_503_stale_while_the_source_knows_its_configuration_is_out_of_date(
    shared_stack: FederationStack,
) -> None:
    holder = shared_stack.app.extensions["esi.service"].holder
    fresh = holder.stale_reason
    holder.stale_reason = lambda: "not confirmed by the API server for over 60 s: secrets"
    try:
        response = get(shared_stack, "/readyz")
    finally:
        holder.stale_reason = fresh
    assert response.status_code == 503
    assert response.json() == {
        "status": "stale",
        "reason": "not confirmed by the API server for over 60 s: secrets",
    }
    assert get(shared_stack, "/readyz").status_code == 200


def test_metrics_counters_move_with_requests(shared_stack: FederationStack) -> None:
    stack = shared_stack
    before = get(stack, "/metrics").text
    assert post_secrets(stack, stack.mint()).status_code == 200
    assert post_secrets(stack, None).status_code == 401
    after = get(stack, "/metrics")
    assert after.headers["Content-Type"].startswith("text/plain")
    for name, labels in (
        ("esi_federation_requests_total", {"route": "secrets", "status": "200"}),
        ("esi_federation_requests_total", {"route": "secrets", "status": "401"}),
        ("esi_federation_decisions_total", {"decision": "allowed"}),
        ("esi_federation_decisions_total", {"decision": "unauthenticated"}),
        ("esi_federation_store_reads_total", {"store": "vault-prod", "result": "ok"}),
    ):
        assert metric_value(after.text, name, labels) >= metric_value(before, name, labels) + 1, name
    assert "esi_federation_request_duration_seconds_bucket" in after.text


def test_the_openapi_document_is_openapi_3_1(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.1")
    assert {"/v1/secrets", "/v1/whoami", "/healthz", "/readyz", "/metrics"} <= set(openapi["paths"])
    for schema in openapi["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_answers_match_the_openapi_schemas(shared_stack: FederationStack, openapi: dict[str, Any]) -> None:
    stack = shared_stack
    schemas = openapi["components"]["schemas"]
    ok = post_secrets(stack, stack.mint(), secrets=[PASSWORD, {"store": "vault-prod", "key": "api-keys"}])
    _validate(openapi, "SecretsResponse", ok.json())
    request_body = {"cluster": stack.cluster, "caCert": stack.issuer.ca_pem, "secrets": [PASSWORD]}
    _validate(openapi, "SecretsRequest", request_body)
    problem_schema = next(name for name in schemas if "roblem" in name)
    for response in (post_secrets(stack, None), post_secrets(stack, stack.mint(), {"secrets": []})):
        _validate(openapi, problem_schema, response.json())
    whoami = get(stack, "/v1/whoami", stack.mint())
    _validate(openapi, "WhoamiResponse", whoami.json())


def test_the_openapi_request_schema_refuses_what_the_server_refuses(openapi: dict[str, Any]) -> None:
    for bad in ({"secrets": []}, {"secrets": [PASSWORD] * 101}, {"secrets": [PASSWORD], "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            _validate(openapi, "SecretsRequest", bad)


def _compat(stack: FederationStack, key: str, token: str | None, body: Any) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        f"{stack.url}/secretstore/vault-prod/secrets/{key}",
        data=json.dumps(body),
        headers=headers,
        verify=str(stack.server_ca_file),
        timeout=15,
    )


def test_the_compatibility_route_answers_the_whole_secret_as_a_json_string(
    shared_stack: FederationStack,
) -> None:
    stack = shared_stack
    response = _compat(stack, "db-credentials", stack.mint(), {"ca.crt": stack.issuer.ca_pem})
    assert response.status_code == 200, response.text
    whole = response.json()
    assert isinstance(whole, str)
    assert json.loads(whole) == {"username": stack.values["username"], "password": stack.values["password"]}


def test_the_compatibility_route_applies_the_same_checks(shared_stack: FederationStack) -> None:
    stack = shared_stack
    assert _compat(stack, "db-credentials", None, {"ca.crt": stack.issuer.ca_pem}).status_code == 401
    stranger = stack.mint(service_account="grafana")
    assert _compat(stack, "db-credentials", stranger, {"ca.crt": stack.issuer.ca_pem}).status_code == 403
    assert _compat(stack, "no-such-key", stack.mint(), {"ca.crt": stack.issuer.ca_pem}).status_code == 404
    assert _compat(stack, "db-credentials", stack.mint(), {}).status_code == 200


def test_an_unknown_route_is_a_problem_404(shared_stack: FederationStack) -> None:
    response = get(shared_stack, "/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_wrong_method_is_a_problem_405(shared_stack: FederationStack) -> None:
    response = get(shared_stack, "/v1/secrets")
    assert response.status_code == 405
    assert response.json()["status"] == 405


def test_a_sent_request_id_is_echoed_only_when_it_is_safe(shared_stack: FederationStack) -> None:
    safe = post_secrets(shared_stack, None, headers={"X-Request-Id": "abc-123.x_y"})
    assert safe.headers["X-Request-Id"] == "abc-123.x_y"
    unsafe = post_secrets(shared_stack, None, headers={"X-Request-Id": "a b;<script>"})
    assert unsafe.headers["X-Request-Id"] != "a b;<script>"
    assert len(unsafe.headers["X-Request-Id"]) == 32
