"""403, 404, 400, 413, 415 and 429: each names what is wrong, never a value; checks run in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.federation.helpers_requests import PASSWORD, SECRETS_READER, SERVICE_A, TEAM_READER, post_secrets
from tests.helpers_stack import FederationStack, running_stack

# One module-scoped server: keep the module on one xdist worker instead of starting it on both.
pytestmark = pytest.mark.xdist_group("api_statuses")


def _team_reader_token(stack: FederationStack) -> str:
    return stack.mint(service_account=TEAM_READER.rsplit(":", 1)[1])


def _assert_names_no_value(response: requests.Response, stack: FederationStack) -> None:
    for value in stack.values.values():
        assert value not in response.text


# -- 403 ---------------------------------------------------------------------------------------------


def test_another_service_account_is_forbidden(shared_stack: FederationStack) -> None:
    stack = shared_stack
    response = post_secrets(stack, stack.mint(service_account="grafana"))
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "vault-prod:db-credentials#password" in response.json()["detail"]
    _assert_names_no_value(response, stack)


def test_another_namespace_with_the_same_service_account_name_is_forbidden(
    shared_stack: FederationStack,
) -> None:
    response = post_secrets(shared_stack, shared_stack.mint(namespace="default"))
    assert response.status_code == 403


def test_a_store_that_is_not_granted_is_forbidden_and_nothing_is_returned(
    shared_stack: FederationStack,
) -> None:
    stack = shared_stack
    staging = {"store": "vault-staging", "key": "db-credentials", "property": "password"}
    response = post_secrets(stack, stack.mint(), secrets=[PASSWORD, staging, SERVICE_A])
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "vault-staging:db-credentials#password" in detail
    assert "vault-prod" not in detail
    assert "secrets" not in response.json()
    _assert_names_no_value(response, stack)


def test_a_key_inside_allowed_secrets_glob_is_served(shared_stack: FederationStack) -> None:
    stack = shared_stack
    items = [
        {"store": "team-store", "key": "team-a/db", "property": "password"},
        {"store": "team-store", "key": "team-a/deep/cache", "property": "password"},
    ]
    response = post_secrets(stack, _team_reader_token(stack), secrets=items)
    assert response.status_code == 200, response.text
    assert [i["value"] for i in response.json()["secrets"]] == [
        "team-a-" + stack.values["password"],
        "team-a-cache-" + stack.values["password"],
    ]


@pytest.mark.parametrize("key", ["team-b/db", "team-a", "team-ab/db", "TEAM-A/db"])
def test_a_key_outside_allowed_secrets_is_forbidden(shared_stack: FederationStack, key: str) -> None:
    stack = shared_stack
    items = [
        {"store": "team-store", "key": "team-a/db", "property": "password"},
        {"store": "team-store", "key": key, "property": "password"},
    ]
    response = post_secrets(stack, _team_reader_token(stack), secrets=items)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert f"team-store:{key}#password" in detail
    assert "team-a/db#" not in detail
    assert "team-a-" not in response.text
    _assert_names_no_value(response, stack)


def test_a_pattern_limited_subject_cannot_read_other_grants_stores(shared_stack: FederationStack) -> None:
    response = post_secrets(shared_stack, _team_reader_token(shared_stack), secrets=[PASSWORD])
    assert response.status_code == 403


# -- 404 ---------------------------------------------------------------------------------------------


def test_a_missing_key_is_not_found_and_named(shared_stack: FederationStack) -> None:
    stack = shared_stack
    missing = {"store": "vault-prod", "key": "no-such-key", "property": "password"}
    response = post_secrets(stack, stack.mint(), secrets=[PASSWORD, missing])
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "vault-prod:no-such-key#password" in response.json()["detail"]
    _assert_names_no_value(response, stack)


def test_a_missing_property_is_not_found_and_named(shared_stack: FederationStack) -> None:
    stack = shared_stack
    missing = {"store": "vault-prod", "key": "db-credentials", "property": "pin"}
    response = post_secrets(stack, stack.mint(), secrets=[missing, SERVICE_A])
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "vault-prod:db-credentials#pin" in detail
    assert "api-keys" not in detail
    _assert_names_no_value(response, stack)


def test_every_missing_item_is_named_in_one_404(shared_stack: FederationStack) -> None:
    stack = shared_stack
    items = [
        {"store": "vault-prod", "key": "gone-1"},
        {"store": "vault-prod", "key": "db-credentials", "property": "gone-2"},
    ]
    detail = post_secrets(stack, stack.mint(), secrets=items).json()["detail"]
    assert "vault-prod:gone-1" in detail
    assert "vault-prod:db-credentials#gone-2" in detail


# -- 502 ---------------------------------------------------------------------------------------------


def test_a_store_error_is_a_502_and_no_partial_data(shared_stack: FederationStack) -> None:
    stack = shared_stack
    token = stack.mint(service_account=SECRETS_READER.rsplit(":", 1)[1])
    plain = {"store": "cluster-secrets", "key": "plain", "property": "token"}
    alone = post_secrets(stack, token, secrets=[plain])
    assert alone.status_code == 200, alone.text
    assert alone.json()["secrets"][0]["value"] == "k8s-" + stack.values["password"]
    mixed = post_secrets(stack, token, secrets=[plain, {"store": "cluster-secrets", "key": "binary"}])
    assert mixed.status_code == 502
    assert mixed.headers["Content-Type"] == "application/problem+json"
    assert "k8s-" not in mixed.text
    _assert_names_no_value(mixed, stack)


# -- 400 ---------------------------------------------------------------------------------------------

BAD_SHAPES: dict[str, tuple[Any, str]] = {
    "empty list": ({"secrets": []}, "secrets"),
    "101 items": ({"secrets": [PASSWORD] * 101}, "secrets"),
    "secrets missing": ({}, "secrets"),
    "secrets not a list": ({"secrets": "vault-prod:db-credentials"}, "secrets"),
    "body not an object": ([PASSWORD], "object"),
    "item not an object": ({"secrets": ["db-credentials"]}, "secrets[0]"),
    "key not a string": ({"secrets": [{"store": "vault-prod", "key": 7}]}, "secrets[0].key"),
    "empty key": ({"secrets": [{"store": "vault-prod", "key": ""}]}, "secrets[0].key"),
    "key missing": ({"secrets": [{"store": "vault-prod"}]}, "secrets[0].key"),
    "store not a string": ({"secrets": [{"store": ["vault-prod"], "key": "k"}]}, "secrets[0].store"),
    "property not a string": ({"secrets": [PASSWORD, {**PASSWORD, "property": 1}]}, "secrets[1].property"),
    "control character in key": ({"secrets": [{"store": "vault-prod", "key": "a\nb"}]}, "secrets[0].key"),
    "unknown field": ({"secrets": [PASSWORD], "namespace": "x"}, "namespace"),
    "unknown item field": ({"secrets": [{**PASSWORD, "version": "2"}]}, "version"),
    "bad store name": ({"secrets": [{"store": "Vault_Prod", "key": "k"}]}, "secrets[0].store"),
    "cluster not a string": ({"cluster": 5, "secrets": [PASSWORD]}, "cluster"),
    "bad cluster name": ({"cluster": "Client Cluster", "secrets": [PASSWORD]}, "cluster"),
    "caCert not a string": ({"caCert": ["pem"], "secrets": [PASSWORD]}, "caCert"),
}


@pytest.mark.parametrize(("body", "field"), BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_a_bad_shape_is_a_400_naming_the_field(shared_stack: FederationStack, body: Any, field: str) -> None:
    response = post_secrets(shared_stack, shared_stack.mint(), body)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.json()["detail"]


def test_exactly_100_items_are_accepted(shared_stack: FederationStack) -> None:
    response = post_secrets(shared_stack, shared_stack.mint(), secrets=[PASSWORD] * 100)
    assert response.status_code == 200
    assert len(response.json()["secrets"]) == 100


@pytest.mark.parametrize("data", [b"{", b"", b"\xff\xfe", b"{'secrets': []}"], ids=repr)
def test_a_body_that_is_not_json_is_a_400(shared_stack: FederationStack, data: bytes) -> None:
    response = post_secrets(shared_stack, shared_stack.mint(), data=data)
    assert response.status_code == 400
    assert response.json()["title"] == "Bad Request"


# -- 413 / 415 ---------------------------------------------------------------------------------------


def _oversized_body() -> bytes:
    body = json.dumps({"secrets": [PASSWORD], "caCert": "x" * (64 * 1024)}).encode()
    assert len(body) > 64 * 1024
    return body


def test_a_body_over_64_kib_is_a_413(shared_stack: FederationStack) -> None:
    response = post_secrets(shared_stack, shared_stack.mint(), data=_oversized_body())
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_chunked_body_over_64_kib_is_a_413(shared_stack: FederationStack) -> None:
    assert _chunked_post(shared_stack, _oversized_body()).status_code == 413


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""]
)
def test_a_body_that_is_not_declared_json_is_a_415(shared_stack: FederationStack, content_type: str) -> None:
    response = post_secrets(
        shared_stack, shared_stack.mint(), data=b'{"secrets": []}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/problem+json"


def test_json_with_a_charset_parameter_is_accepted(shared_stack: FederationStack) -> None:
    response = post_secrets(
        shared_stack, shared_stack.mint(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


# -- order of checks ---------------------------------------------------------------------------------


def test_415_comes_before_401(shared_stack: FederationStack) -> None:
    response = post_secrets(shared_stack, None, data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_413_comes_before_401(shared_stack: FederationStack) -> None:
    assert post_secrets(shared_stack, None, data=_oversized_body()).status_code == 413


def test_401_comes_before_400(shared_stack: FederationStack) -> None:
    assert post_secrets(shared_stack, None, {"secrets": []}).status_code == 401
    assert post_secrets(shared_stack, None, data=b"{not json").status_code == 401
    assert post_secrets(shared_stack, "garbage", {"secrets": "x"}).status_code == 401


def test_400_comes_before_403(shared_stack: FederationStack) -> None:
    stranger = shared_stack.mint(service_account="grafana")
    assert post_secrets(shared_stack, stranger, {"secrets": []}).status_code == 400


def test_403_comes_before_404(shared_stack: FederationStack) -> None:
    stack = shared_stack
    items = [{"store": "vault-prod", "key": "no-such-key"}, {"store": "vault-staging", "key": "nope"}]
    assert post_secrets(stack, stack.mint(), secrets=items).status_code == 403


# -- 429 ---------------------------------------------------------------------------------------------


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with running_stack(tmp_path, rate_limit=2.0) as stack:
        token = stack.mint()
        with requests.Session() as session:
            # A burst of twice the rate passes; a slow machine refills a little while it is sent.
            responses = [post_secrets(stack, token, session=session) for _ in range(4)]
            for _ in range(20):
                limited = post_secrets(stack, token, session=session)
                if limited.status_code != 200:
                    break
            other = post_secrets(stack, stack.mint(service_account="grafana"), session=session)
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["Content-Type"] == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.status_code == 403  # the limit is per (cluster, subject)


def _chunked_post(stack: FederationStack, body: bytes) -> requests.Response:
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
    return requests.post(
        stack.url + "/v1/secrets",
        data=chunks,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.mint()}"},
        verify=str(stack.server_ca_file),
        timeout=15,
    )


def test_a_chunked_body_padded_past_64_kib_with_blanks_is_a_413_not_cut_to_fit(
    shared_stack: FederationStack,
) -> None:
    body = json.dumps({"secrets": [PASSWORD]}).encode().ljust(64 * 1024 + 100)
    assert _chunked_post(shared_stack, body).status_code == 413


def test_a_chunked_body_of_exactly_64_kib_is_read_whole(shared_stack: FederationStack) -> None:
    body = json.dumps({"secrets": [PASSWORD]}).encode().ljust(64 * 1024)
    assert _chunked_post(shared_stack, body).status_code == 200
