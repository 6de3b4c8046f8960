"""Generators and generator grants in a configuration: loaded, checked offline, refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from federation.authz import RequestedItem, covers, denied_items, may_revoke_states
from federation.config.parse import build_configuration, ignored_reason
from federation.errors import ConfigurationError
from federation.generators.model import GeneratorRef
from federation.tokens import Identity
from tests.helpers_stack import authorization

SUBJECT = "system:serviceaccount:apps:web"
IDENTITY = Identity(
    "client-cluster-alpha", "https://kubernetes.default.svc.cluster.local", SUBJECT, "apps", "web", "web-0"
)


def generator(
    kind: str, name: str, spec: dict[str, Any] | None = None, namespace: str = "apps"
) -> dict[str, Any]:
    return {
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec or {},
    }


def grant(**spec: Any) -> dict[str, Any]:
    resource = authorization("gen", SUBJECT)
    del resource["spec"]["allowedClusterSecretStores"]
    resource["spec"].update(spec)
    return resource


def problems(*resources: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigurationError) as raised:
        build_configuration(list(resources), "test")
    return raised.value.problems


def test_generators_and_generator_grants_load() -> None:
    config = build_configuration(
        [
            generator("Password", "pw", {"length": 32}),
            generator("UUID", "id"),
            generator("Fake", "fixed", {"data": {"a": "b"}}),
            generator(
                "VaultDynamicSecret",
                "db",
                {"path": "database/creds/app", "provider": {"server": "https://v"}},
            ),
            grant(
                allowedGenerators=[{"namespace": "apps", "kind": "Password", "name": "pw"}],
                allowedGeneratorStates=[{"namespace": "apps"}],
            ),
        ],
        "test",
    )
    assert set(config.generators) == {
        GeneratorRef("apps", "Password", "pw"),
        GeneratorRef("apps", "UUID", "id"),
        GeneratorRef("apps", "Fake", "fixed"),
        GeneratorRef("apps", "VaultDynamicSecret", "db"),
    }
    (only,) = config.grants
    assert only.stores == frozenset()
    assert only.generators == frozenset({GeneratorRef("apps", "Password", "pw")})
    assert only.generator_state_namespaces == frozenset({"apps"})


@pytest.mark.parametrize(
    ("resource", "named"),
    [
        (generator("Password", "pw", {"length": 4, "digits": 3, "symbols": 3}), "exceed length (4)"),
        (generator("Fake", "f", {"data": {"a": 1}}), "data must map non-empty names to strings"),
        (generator("VaultDynamicSecret", "v", {"provider": {}}), "path is required"),
        (
            generator("VaultDynamicSecret", "v", {"path": "db/creds/x"}),
            "provider (a vault provider block) is required",
        ),
        (
            generator(
                "VaultDynamicSecret",
                "v",
                {
                    "path": "a",
                    "provider": {"auth": {"tokenSecretRef": {"name": "t", "key": "k", "namespace": "other"}}},
                },
            ),
            "may only use Secrets of its own namespace 'apps'",
        ),
        (
            generator("VaultDynamicSecret", "v", {"path": "a", "provider": {}, "resultType": "Lease"}),
            "resultType",
        ),
        (
            grant(allowedGenerators=[{"namespace": "apps", "kind": "Password"}]),
            "allowedGenerators must be a list",
        ),
        (
            grant(allowedGenerators=[{"namespace": "apps", "kind": "SSHKey", "name": "k"}]),
            "'SSHKey' is not served",
        ),
        (
            grant(allowedGeneratorStates=[{"name": "x"}]),
            "allowedGeneratorStates must be a list of {namespace}",
        ),
        (grant(), "allowedClusterSecretStores is required"),
    ],
)
def test_a_broken_generator_or_grant_is_refused_with_the_field_named(
    resource: dict[str, Any], named: str
) -> None:
    found = problems(resource)
    assert any(named in problem for problem in found), found


def test_two_generators_of_one_name_kind_and_namespace_are_refused() -> None:
    assert any(
        "defined twice" in problem for problem in problems(generator("UUID", "id"), generator("UUID", "id"))
    )


def test_a_generator_kind_not_served_is_ignored_with_a_reason() -> None:
    reason = ignored_reason(generator("ECRAuthorizationToken", "ecr"))
    assert reason is not None
    assert "'ECRAuthorizationToken' is not served" in reason


def test_generator_grants_are_exact_and_deny_by_default() -> None:
    config = build_configuration(
        [grant(allowedGenerators=[{"namespace": "apps", "kind": "Password", "name": "pw"}])], "test"
    )
    (held,) = config.grants
    granted = RequestedItem.of_generator(GeneratorRef("apps", "Password", "pw"))
    assert covers(held, granted)
    for other in (
        GeneratorRef("apps", "Password", "pw2"),
        GeneratorRef("other", "Password", "pw"),
        GeneratorRef("apps", "UUID", "pw"),
    ):
        assert not covers(held, RequestedItem.of_generator(other))
    assert denied_items(IDENTITY, config.grants, [granted]) == []
    stranger = Identity(
        IDENTITY.federation, IDENTITY.issuer, "system:serviceaccount:apps:other", "apps", "other", None
    )
    assert denied_items(stranger, config.grants, [granted]) == [granted]
    assert not may_revoke_states(IDENTITY, config.grants, "apps")


def test_revoking_others_needs_allowed_generator_states_of_that_namespace() -> None:
    config = build_configuration([grant(allowedGeneratorStates=[{"namespace": "apps"}])], "test")
    assert may_revoke_states(IDENTITY, config.grants, "apps")
    assert not may_revoke_states(IDENTITY, config.grants, "other")
