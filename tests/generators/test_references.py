"""Generator references, ``generator:<namespace>/<Kind>/<name>[.property]``: one parser for esi-cli and the
webhook, rendered back to themselves, and sent as generator items."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.commands import _matches, _wire_ref
from cli.refs import ReferenceError, SecretRef, parse_ref
from cli.settings import _ref
from webhook.annotations import _check_ref

NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
DOTTED = st.from_regex(r"[a-z0-9]([-.a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
KINDS = st.sampled_from(["Password", "UUID", "Fake", "VaultDynamicSecret"])
PROPERTIES = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True))


@given(NAMES, KINDS, DOTTED, PROPERTIES)
def test_a_generator_reference_renders_back_to_itself(
    namespace: str, kind: str, name: str, prop: str | None
) -> None:
    ref = SecretRef.of_generator(namespace, kind, name, prop)
    if prop is None and "." in name:
        return  # like a store key with a dot, such a whole-map reference cannot be written
    assert parse_ref(ref.render(), default_store="vault-prod") == ref


def test_the_forms_of_a_generator_reference() -> None:
    ref = parse_ref("generator:apps/VaultDynamicSecret/db.password", default_store="vault-prod")
    assert ref.generator == ("apps", "VaultDynamicSecret", "db")
    assert ref.property == "password"
    assert ref.store is None  # the default store does not apply to generators
    dotted = parse_ref("generator:apps/Password/db.main#password")
    assert dotted.generator == ("apps", "Password", "db.main")
    assert dotted.render() == "generator:apps/Password/db.main#password"
    whole = parse_ref("generator:apps/UUID/request-id")
    assert (whole.generator, whole.property) == (("apps", "UUID", "request-id"), None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("generator:apps/Password", "generator:<namespace>/<Kind>/<name>"),
        ("generator:apps//pw", "generator:<namespace>/<Kind>/<name>"),
        ("generator:apps/Password/pw/extra", "generator:<namespace>/<Kind>/<name>"),
        ("generator:apps/password/pw", "written as ESO writes it"),
        ("generator:apps/Password/pw.", "empty property after '.'"),
        ("generator:apps/Password/pw#", "empty property after '#'"),
    ],
)
def test_a_malformed_generator_reference_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ReferenceError, match=problem):
        parse_ref(text)


def test_a_store_reference_is_unchanged() -> None:
    assert parse_ref("vault-prod:db-credentials.password") == SecretRef(
        "vault-prod", "db-credentials", "password"
    )
    assert parse_ref("db-credentials.password").generator is None


def test_esi_cli_and_the_webhook_take_a_generator_reference_without_a_store() -> None:
    text = "generator:apps/Password/pw.password"
    assert _ref(text, None, "--env X").generator == ("apps", "Password", "pw")
    assert _check_ref("esi.external-secrets.io/env-X", text, None).generator == ("apps", "Password", "pw")


def test_a_generator_reference_goes_on_the_wire_as_a_generator_item() -> None:
    ref = parse_ref("generator:apps/Password/pw.password")
    item = _wire_ref(ref)
    assert item == {
        "generator": {"namespace": "apps", "kind": "Password", "name": "pw"},
        "property": "password",
    }
    assert _matches(ref, {**item, "value": "x"})
    assert not _matches(ref, {"generator": {"namespace": "apps", "kind": "Password", "name": "other"}})
    assert _wire_ref(parse_ref("generator:apps/UUID/id")) == {
        "generator": {"namespace": "apps", "kind": "UUID", "name": "id"}
    }
