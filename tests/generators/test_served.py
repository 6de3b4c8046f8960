"""Generators through the running server: generator items in /v1/secrets, ESI's generator routes, whoami,
and per-pod PostgreSQL roles (OpenBao's database engine) revoked on DELETE, on pod deletion, after a
restart."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from hack.openbao import OpenBao
from hack.postgres import Postgres
from tests.generators.helpers_dynamic import dynamic_roles
from tests.helpers_stack import AUDIENCE, CLUSTER, SUBJECT, FederationStack, authorization, running_stack

pytestmark = pytest.mark.slow

NAMESPACE = "apps"
POD_CHECK_INTERVAL = 0.5
DB = {"namespace": NAMESPACE, "kind": "VaultDynamicSecret", "name": "db"}
PASSWORD = {"namespace": NAMESPACE, "kind": "Password", "name": "pw"}
UNGRANTED = {"namespace": NAMESPACE, "kind": "UUID", "name": "not-granted"}


def generator(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def secret(namespace: str, name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


def configure(stack: FederationStack, bao: OpenBao) -> None:
    """Generators, their grant, and pod checks (the federation's reviewer token) for the stack."""
    federation = stack.issuer.federation_manifest(CLUSTER, audiences=[AUDIENCE])
    federation["spec"]["tokenReview"] = {
        "tokenSecretRef": {"name": "reviewer", "namespace": "esi-system", "key": "token"}
    }
    grant = authorization("allow-alpha-generators")
    grant["spec"]["allowedGenerators"] = [DB, PASSWORD]
    grant["spec"]["allowedGeneratorStates"] = [{"namespace": NAMESPACE}]
    provider = {"server": bao.address, "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}}
    before = stack.reload_count()
    stack.write("client-cluster-alpha.yaml", federation)
    stack.write(
        "generators.yaml",
        secret(NAMESPACE, "bao-token", bao.root_token),
        secret("esi-system", "reviewer", "reviewer-token"),
        generator("VaultDynamicSecret", "db", {"provider": provider, "path": "database/creds/app"}),
        generator("Password", "pw", {"length": 20, "symbols": 0}),
        generator("UUID", "not-granted", {}),
        grant,
    )
    stack.wait_for_reload(before)
    time.sleep(0.3)  # both files are in: the second reload of the pair


@pytest.fixture
def stack(tmp_path: Path, openbao: OpenBao) -> Iterator[FederationStack]:
    with running_stack(
        tmp_path, state_dir=tmp_path / "state", pod_check_interval=POD_CHECK_INTERVAL
    ) as running:
        configure(running, openbao)
        yield running


def call(stack: FederationStack, method: str, path: str, token: str, body: Any = None) -> requests.Response:
    return requests.request(
        method,
        stack.url + path,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=json.dumps(body) if body is not None else None,
        verify=str(stack.server_ca_file),
        timeout=20,
    )


def pod_token(stack: FederationStack, pod: str) -> str:
    return stack.mint(pod_name=pod)


def login(postgres: Postgres, username: str, password: str) -> str:
    return postgres.psql("SELECT current_user", user=username, password=password)


def test_one_request_gets_one_database_login_with_its_store_secrets(
    stack: FederationStack, postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    items = [
        {"store": "vault-prod", "key": "db-credentials", "property": "username"},
        {"generator": DB, "property": "username"},
        {"generator": DB, "property": "password"},
        {"generator": PASSWORD, "property": "password"},
    ]
    response = call(stack, "POST", "/v1/secrets", pod_token(stack, "web-0"), {"secrets": items})
    assert response.status_code == 200, response.text
    answered = response.json()["secrets"]
    assert [{k: v for k, v in item.items() if k != "value"} for item in answered] == [
        {"store": "vault-prod", "key": "db-credentials", "property": "username"},
        {"generator": DB, "property": "username"},
        {"generator": DB, "property": "password"},
        {"generator": PASSWORD, "property": "password"},
    ]
    username, password = answered[1]["value"], answered[2]["value"]
    assert login(postgres, username, password) == username  # user and password of ONE credential
    assert len(answered[3]["value"]) == 20
    assert answered[0]["value"] == stack.values["username"]
    # Every record with its structured fields (the audit line's keys, ...), as the JSON log writes them.
    logged = "\n".join(str(vars(record)) for record in caplog.records)
    assert "generator VaultDynamicSecret apps/db#password" in logged  # the audit line names the item
    leaked = [name for name, value in (("user", username), ("password", password)) if value in logged]
    assert leaked == []


def test_two_pods_never_share_a_credential(stack: FederationStack) -> None:
    items = [{"generator": DB, "property": "username"}, {"generator": PASSWORD, "property": "password"}]
    first = call(stack, "POST", "/v1/secrets", pod_token(stack, "web-0"), {"secrets": items}).json()[
        "secrets"
    ]
    second = call(stack, "POST", "/v1/secrets", pod_token(stack, "web-1"), {"secrets": items}).json()[
        "secrets"
    ]
    assert first[0]["value"] != second[0]["value"]
    assert first[1]["value"] != second[1]["value"]


@pytest.mark.parametrize(
    ("items", "status", "detail"),
    [
        ([{"generator": DB}, {"generator": UNGRANTED}], 403, "not granted: generator UUID apps/not-granted"),
        ([{"generator": DB}, {"store": "vault-prod", "key": "absent"}], 404, "not found: vault-prod:absent"),
        ([{"generator": DB, "property": "username"}, {"generator": DB, "property": "nope"}], 404, "db#nope"),
        ([{"generator": {**DB, "kind": "SSHKey"}}], 400, "generator kind 'SSHKey' is not served"),
        ([{"generator": {"namespace": NAMESPACE, "kind": "Password"}}], 400, "{namespace, kind, name}"),
        ([{"generator": DB, "store": "vault-prod"}], 400, "unknown fields: store"),
    ],
)
def test_a_refused_batch_leaves_no_credential_behind(
    stack: FederationStack, postgres: Postgres, items: list[dict[str, Any]], status: int, detail: str
) -> None:
    before = dynamic_roles(postgres)
    response = call(stack, "POST", "/v1/secrets", pod_token(stack, "web-0"), {"secrets": items})
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert dynamic_roles(postgres) == before
    assert list((stack.manifests_dir.parent / "state").glob("*.json")) == []


def test_whoami_lists_the_granted_generators(stack: FederationStack) -> None:
    allowed = call(stack, "GET", "/v1/whoami", pod_token(stack, "web-0")).json()["allowed"]
    (grant,) = [entry for entry in allowed if entry["authorization"] == "allow-alpha-generators"]
    assert grant["generators"] == [PASSWORD, DB]
    assert grant["generatorStates"] == [{"namespace": NAMESPACE}]


def test_esi_routes_generate_and_the_owner_revokes_at_once(
    stack: FederationStack, postgres: Postgres
) -> None:
    token = pod_token(stack, "web-0")
    response = call(stack, "POST", "/generators/apps/VaultDynamicSecret/db", token)
    assert response.status_code == 200, response.text
    made = response.json()
    assert all(isinstance(value, str) for value in made.values())  # ESI answers a map of strings
    assert login(postgres, made["username"], made["password"]) == made["username"]
    revoked = call(stack, "DELETE", "/generators/apps/VaultDynamicSecret/db", token)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() is None
    assert made["username"] not in dynamic_roles(postgres)


def test_esi_routes_refuse_what_is_not_granted(stack: FederationStack) -> None:
    token = pod_token(stack, "web-0")
    assert call(stack, "POST", "/generators/apps/UUID/not-granted", token).status_code == 403
    assert call(stack, "DELETE", "/generators/apps/UUID/not-granted", token).status_code == 403
    unknown = call(stack, "POST", "/generators/apps/Webhook/x", token)
    assert unknown.status_code == 400
    assert "generator kind 'Webhook' is not served" in unknown.json()["detail"]
    other_namespace = call(
        stack, "POST", "/generators/other/revoke", token, {"owner": "web-0", "namespace": "other"}
    )
    assert other_namespace.status_code == 403


def test_the_revoke_route_revokes_another_pods_credentials(
    stack: FederationStack, postgres: Postgres
) -> None:
    made = call(stack, "POST", "/generators/apps/VaultDynamicSecret/db", pod_token(stack, "web-0")).json()
    operator = pod_token(stack, "ops-0")
    mismatch = call(stack, "POST", "/generators/apps/revoke", operator, {"owner": "web-0", "namespace": "x"})
    assert mismatch.status_code == 400
    response = call(
        stack, "POST", "/generators/apps/revoke", operator, {"owner": "web-0", "namespace": "apps"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == "GeneratorState deleted"
    assert made["username"] not in dynamic_roles(postgres)


def test_deleting_the_pod_drops_its_role_within_the_check_interval(
    stack: FederationStack, postgres: Postgres
) -> None:
    made = call(stack, "POST", "/generators/apps/VaultDynamicSecret/db", pod_token(stack, "web-0")).json()
    kept = call(stack, "POST", "/generators/apps/VaultDynamicSecret/db", pod_token(stack, "web-1")).json()
    deleted_at = time.monotonic()
    stack.issuer.delete_pod(SUBJECT.split(":")[2], "web-0")
    while made["username"] in dynamic_roles(postgres):
        assert time.monotonic() - deleted_at < POD_CHECK_INTERVAL + 5, "the role outlived the check interval"
        time.sleep(0.05)
    print(
        f"pod deleted -> role gone in {time.monotonic() - deleted_at:.2f} s (interval {POD_CHECK_INTERVAL} s)"
    )
    assert kept["username"] in dynamic_roles(postgres)


def test_a_restarted_server_keeps_the_record_and_still_revokes(
    tmp_path: Path, openbao: OpenBao, postgres: Postgres
) -> None:
    state = tmp_path / "state"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with running_stack(tmp_path / "first", state_dir=state, pod_check_interval=60) as first:
        configure(first, openbao)
        token = pod_token(first, "web-0")
        made = call(first, "POST", "/generators/apps/VaultDynamicSecret/db", token).json()
        issuer = first.issuer
    assert len(list(state.glob("*.json"))) == 1
    with running_stack(tmp_path / "second", state_dir=state, pod_check_interval=60) as second:
        # The same client cluster (its keys), so that the old pod's token still verifies.
        second.issuer.tokens = issuer.tokens
        configure(second, openbao)
        revoked = call(second, "DELETE", "/generators/apps/VaultDynamicSecret/db", token)
        assert revoked.status_code == 200, revoked.text
    assert made["username"] not in dynamic_roles(postgres)
    assert list(state.glob("*.json")) == []


def test_generator_answers_match_the_openapi_schemas(stack: FederationStack) -> None:
    document = yaml.safe_load(resources.files("federation").joinpath("openapi.yaml").read_text())

    def validate(schema_name: str, instance: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(instance)

    token = pod_token(stack, "web-0")
    body = {"secrets": [{"generator": PASSWORD, "property": "password"}, {"generator": PASSWORD}]}
    validate("SecretsRequest", body)
    validate("SecretsResponse", call(stack, "POST", "/v1/secrets", token, body).json())
    validate("WhoamiResponse", call(stack, "GET", "/v1/whoami", token).json())
    with pytest.raises(jsonschema.ValidationError):
        validate("SecretsRequest", {"secrets": [{"generator": {**PASSWORD, "kind": "SSHKey"}}]})
