"""Valid tokens read what their Authorization grants, over real TLS."""

from __future__ import annotations

import base64
import json

import pytest

from tests.federation.helpers_requests import PASSWORD, SERVICE_A, TEAM_READER, USERNAME, get, post_secrets
from tests.helpers_stack import CLUSTER, SUBJECT, FederationStack

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("api_success")


def test_valid_token_gets_values_in_request_order(shared_stack: FederationStack) -> None:
    stack = shared_stack
    response = post_secrets(stack, stack.mint(), secrets=[SERVICE_A, PASSWORD, USERNAME])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["value"] for item in body["secrets"]] == [
        stack.values["service-a-token"],
        stack.values["password"],
        stack.values["username"],
    ]
    assert [(i["store"], i["key"], i["property"]) for i in body["secrets"]] == [
        ("vault-prod", "api-keys", "service-a-token"),
        ("vault-prod", "db-credentials", "password"),
        ("vault-prod", "db-credentials", "username"),
    ]
    assert body["identity"] == {"cluster": CLUSTER, "subject": SUBJECT}


def test_a_whole_secret_comes_back_as_a_json_object_string(shared_stack: FederationStack) -> None:
    stack = shared_stack
    whole = {"store": "vault-prod", "key": "db-credentials"}
    response = post_secrets(stack, stack.mint(), secrets=[whole])
    assert response.status_code == 200, response.text
    item = response.json()["secrets"][0]
    assert item["property"] is None
    assert json.loads(item["value"]) == {
        "username": stack.values["username"],
        "password": stack.values["password"],
    }


def test_ca_cert_hint_as_pem_is_accepted(shared_stack: FederationStack) -> None:
    stack = shared_stack
    body = {"caCert": stack.issuer.ca_pem, "secrets": [PASSWORD]}
    response = post_secrets(stack, stack.mint(), body)
    assert response.status_code == 200, response.text
    assert response.json()["secrets"][0]["value"] == stack.values["password"]


def test_ca_cert_hint_as_base64_pem_is_accepted(shared_stack: FederationStack) -> None:
    stack = shared_stack
    encoded = base64.b64encode(stack.issuer.ca_pem.encode()).decode()
    response = post_secrets(stack, stack.mint(), {"caCert": encoded, "secrets": [PASSWORD]})
    assert response.status_code == 200, response.text
    assert response.json()["secrets"][0]["value"] == stack.values["password"]


def test_cluster_hint_selects_the_federation(shared_stack: FederationStack) -> None:
    stack = shared_stack
    response = post_secrets(stack, stack.mint(), {"cluster": CLUSTER, "secrets": [PASSWORD]})
    assert response.status_code == 200, response.text
    assert response.json()["identity"]["cluster"] == CLUSTER


def test_cluster_hint_naming_another_cluster_is_refused(shared_stack: FederationStack) -> None:
    stack = shared_stack
    response = post_secrets(stack, stack.mint(), {"cluster": "client-cluster-beta", "secrets": [PASSWORD]})
    assert response.status_code == 401


def test_whoami_reports_the_identity_and_its_grants(shared_stack: FederationStack) -> None:
    stack = shared_stack
    response = get(stack, "/v1/whoami", stack.mint(pod_name="prometheus-0"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identity"]["subject"] == SUBJECT
    assert body["identity"]["pod"] == "prometheus-0"
    assert body["allowed"] == [
        {
            "authorization": "allow-alpha-monitoring",
            "stores": ["vault-prod"],
            "secrets": ["*"],
            "generators": [],
            "generatorStates": [],
        }
    ]


def test_whoami_lists_the_key_patterns_of_a_limited_grant(shared_stack: FederationStack) -> None:
    token = shared_stack.mint(service_account=TEAM_READER.rsplit(":", 1)[1])
    allowed = get(shared_stack, "/v1/whoami", token).json()["allowed"]
    assert allowed == [
        {
            "authorization": "allow-alpha-team-a",
            "stores": ["team-store"],
            "secrets": ["team-a/*"],
            "generators": [],
            "generatorStates": [],
        }
    ]


def test_whoami_without_a_token_is_a_401(shared_stack: FederationStack) -> None:
    assert get(shared_stack, "/v1/whoami").status_code == 401
