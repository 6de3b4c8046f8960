"""ESO's ``userPass`` and ``cert`` vault auth methods, and ``tls`` client certificates, against a real
OpenBao over TLS. ``ldap``, against a real LDAP server, is in test_vault_auth_ldap.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from federation.errors import StoreError
from federation.stores.vault import VaultProvider
from hack.certs import CertificateAuthority, IssuedCertificate, create_ca
from hack.openbao import OpenBao, make_tls, running_openbao
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref, vault_provider

DB = {"password": "eso-auth-db-password"}
USERPASS_PASSWORD = "userpass-password-1"
TOKEN_SETTINGS = {"token_policies": ["federation"], "token_ttl": "60s", "token_max_ttl": "10m"}


@dataclass
class Vault:
    """The module's OpenBao (TLS) with userpass and cert enabled."""

    bao: OpenBao
    source: ConfigSource
    client: IssuedCertificate
    stranger: IssuedCertificate

    @property
    def ca_bundle(self) -> str:
        assert self.bao.tls is not None
        return base64.b64encode(self.bao.tls.ca_pem).decode()

    def provider(self, auth: dict[str, object], **spec: object) -> VaultProvider:
        return vault_provider(
            self.bao.tls_address, auth, self.source, path="secret", caBundle=self.ca_bundle, **spec
        )

    def logins(self, mount: str, user: str = "") -> int:
        return self.bao.audit_count(f"auth/{mount}/login" + (f"/{user}" if user else ""))


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    directory = tmp_path_factory.mktemp("bao-eso-auth")
    clients: CertificateAuthority = create_ca("vault client CA")
    client = clients.issue([], common_name="esi-federation", client=True)
    stranger = create_ca("another CA").issue([], common_name="esi-federation", client=True)
    with running_openbao(directory, tls=make_tls(directory, "openbao")) as bao:
        root = bao.client()
        root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        root.sys.create_or_update_policy("federation", 'path "secret/data/db-*" { capabilities = ["read"] }')
        root.sys.enable_auth_method("userpass")
        root.write_data("auth/userpass/users/esi", data={"password": USERPASS_PASSWORD, **TOKEN_SETTINGS})
        root.sys.enable_auth_method("cert")
        root.write_data(
            "auth/cert/certs/federation",
            data={
                "certificate": clients.cert_pem.decode(),
                "allowed_common_names": ["esi-federation"],
                **TOKEN_SETTINGS,
            },
        )
        source = ConfigSource(
            {
                "vault-login": {
                    "userpass": USERPASS_PASSWORD,
                    "wrong": "not-the-password",
                },
                "vault-client": {"tls.crt": client.cert_pem.decode(), "tls.key": client.key_pem.decode()},
                "stranger": {"tls.crt": stranger.cert_pem.decode(), "tls.key": stranger.key_pem.decode()},
                "root": {"token": bao.root_token},
            }
        )
        yield Vault(bao, source, client, stranger)


def test_user_pass_logs_in_once_and_reads(vault: Vault) -> None:
    auth = {
        "userPass": {
            "path": "userpass",
            "username": "esi",
            "secretRef": secret_ref("vault-login", "userpass"),
        }
    }
    provider = vault.provider(auth)
    logins = vault.logins("userpass", "esi")
    assert provider.read("db-credentials") == DB
    assert provider.read("db-credentials") == DB
    assert vault.logins("userpass", "esi") == logins + 1


def test_user_pass_with_a_wrong_password_is_refused_without_it(vault: Vault) -> None:
    auth = {"userPass": {"username": "esi", "secretRef": secret_ref("vault-login", "wrong")}}
    with pytest.raises(StoreError) as refused:
        vault.provider(auth).read("db-credentials")
    assert "log in with userPass" in refused.value.detail
    assert "not-the-password" not in str(refused.value)


CERT_AUTH = {
    "cert": {
        "clientCert": secret_ref("vault-client", "tls.crt"),
        "secretRef": secret_ref("vault-client", "tls.key"),
    }
}


def test_cert_logs_in_with_the_client_certificate(vault: Vault) -> None:
    logins = vault.logins("cert")
    assert vault.provider(CERT_AUTH).read("db-credentials") == DB
    assert vault.logins("cert") == logins + 1


def test_cert_of_a_ca_vault_does_not_trust_is_refused(vault: Vault) -> None:
    auth = {
        "cert": {
            "clientCert": secret_ref("stranger", "tls.crt"),
            "secretRef": secret_ref("stranger", "tls.key"),
        }
    }
    with pytest.raises(StoreError, match="log in with cert"):
        vault.provider(auth).read("db-credentials")


def test_cert_key_that_is_not_the_certificates_is_refused_when_built(vault: Vault) -> None:
    auth = {
        "cert": {
            "clientCert": secret_ref("vault-client", "tls.crt"),
            "secretRef": secret_ref("stranger", "tls.key"),
        }
    }
    with pytest.raises(StoreError, match="client certificate and key do not load"):
        vault.provider(auth)


def test_tls_client_certificate_goes_with_a_token_login(vault: Vault) -> None:
    # The cert login of a token store proves the certificate is presented on the store's connections.
    tls = {
        "certSecretRef": secret_ref("vault-client", "tls.crt"),
        "keySecretRef": secret_ref("vault-client", "tls.key"),
    }
    provider = vault.provider({"tokenSecretRef": secret_ref("root", "token")}, tls=tls)
    assert provider.read("db-credentials") == DB
    answer = provider._client.adapter.request("post", "/v1/auth/cert/login", json={})
    assert answer["auth"]["metadata"]["common_name"] == "esi-federation"
