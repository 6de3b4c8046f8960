"""Every auth method of the vault provider, against a real OpenBao; re-login and renewal of tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from federation.errors import StoreError
from federation.settings import Settings
from federation.stores.vault import VaultProvider
from hack.openbao import OpenBao, make_tls, running_openbao
from tests.federation.vault.helpers_vault import (
    ConfigSource,
    FakeClock,
    ServiceAccount,
    Signer,
    TokenReviewServer,
    secret_ref,
    vault_provider,
)

DB = {"username": "prometheus", "password": "auth-test-db-password"}
ROLE_ID = "federation-role-id"
FEDERATION = ServiceAccount("esi-system", "esi-federation")
STRANGER = ServiceAccount("default", "someone-else")


@dataclass
class Vault:
    """The module's OpenBao with every auth method enabled, and the credentials they accept."""

    bao: OpenBao
    secret_id: str
    alt_secret_id: str
    signer: Signer
    review: TokenReviewServer
    source: ConfigSource

    def logins(self, mount: str) -> int:
        return self.bao.audit_count(f"auth/{mount}/login")

    def renewals(self) -> int:
        return self.bao.audit_count("auth/token/renew-self")


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    directory = tmp_path_factory.mktemp("bao-auth")
    review = TokenReviewServer(make_tls(directory, "token-review"))
    with review.running(), running_openbao(directory) as bao:
        root = bao.client()
        root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        root.secrets.kv.v2.create_or_update_secret("forbidden", {"x": "y"}, mount_point="secret")
        root.sys.create_or_update_policy("federation", 'path "secret/data/db-*" { capabilities = ["read"] }')
        token_settings = {"token_policies": ["federation"], "token_ttl": "60s", "token_max_ttl": "10m"}
        secret_id = _app_role(root, "approle", role_id=ROLE_ID, **token_settings)
        alt_secret_id = _app_role(root, "approle-alt", role_id="alt-role-id", **token_settings)
        root.sys.enable_auth_method("kubernetes")
        root.write_data(
            "auth/kubernetes/config",
            data={
                "kubernetes_host": review.url,
                "kubernetes_ca_cert": review.tls.ca_pem.decode(),
                "disable_local_ca_jwt": True,
            },
        )
        root.write_data(
            "auth/kubernetes/role/federation",
            data={
                "bound_service_account_names": [FEDERATION.name],
                "bound_service_account_namespaces": [FEDERATION.namespace],
                **token_settings,
            },
        )
        signer = Signer()
        root.sys.enable_auth_method("jwt")
        root.write_data("auth/jwt/config", data={"jwt_validation_pubkeys": [signer.public_pem]})
        root.write_data(
            "auth/jwt/role/federation",
            data={
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": ["vault"],
                "bound_subject": FEDERATION.username,
                **token_settings,
            },
        )
        review.accounts[signer.token(FEDERATION)] = FEDERATION
        source = ConfigSource(
            {
                "approle": {"secret-id": secret_id, "role-id": ROLE_ID, "alt-secret-id": alt_secret_id},
                "jwt": {"token": signer.token(FEDERATION)},
                "root": {"token": bao.root_token},
            }
        )
        yield Vault(bao, secret_id, alt_secret_id, signer, review, source)


def _app_role(root: Any, mount: str, role_id: str, **token_settings: Any) -> str:
    root.sys.enable_auth_method("approle", path=mount)
    root.write_data(f"auth/{mount}/role/federation", data=token_settings)
    root.write_data(f"auth/{mount}/role/federation/role-id", data={"role_id": role_id})
    return str(root.write_data(f"auth/{mount}/role/federation/secret-id", data={})["data"]["secret_id"])


APP_ROLE = {"appRole": {"roleId": ROLE_ID, "secretRef": secret_ref("approle", "secret-id")}}


def _read(provider: VaultProvider) -> None:
    assert provider.read("db-credentials") == DB


def test_token_secret_ref_reads_without_a_login(vault: Vault) -> None:
    provider = vault_provider(
        vault.bao.address, {"tokenSecretRef": secret_ref("root", "token")}, vault.source, path="secret"
    )
    logins = vault.logins("approle")
    _read(provider)
    assert vault.logins("approle") == logins


def test_app_role_with_role_id_logs_in_once_for_many_reads(vault: Vault) -> None:
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, path="secret")
    logins = vault.logins("approle")
    for _ in range(5):
        _read(provider)
    assert vault.logins("approle") == logins + 1


def test_app_role_with_role_ref_and_a_custom_mount(vault: Vault) -> None:
    vault.source.secrets["approle-alt"] = {"role-id": "alt-role-id"}
    auth = {
        "appRole": {
            "path": "approle-alt",
            "roleRef": secret_ref("approle-alt", "role-id"),
            "secretRef": secret_ref("approle", "alt-secret-id"),
        }
    }
    provider = vault_provider(vault.bao.address, auth, vault.source, path="secret")
    logins = vault.logins("approle-alt")
    _read(provider)
    assert vault.logins("approle-alt") == logins + 1


def test_app_role_with_a_wrong_secret_id_is_a_store_error_without_it(vault: Vault) -> None:
    source = ConfigSource({"approle": {"secret-id": "wrong-secret-id-value"}})
    provider = vault_provider(vault.bao.address, APP_ROLE, source, path="secret")
    with pytest.raises(StoreError) as refused:
        provider.read("db-credentials")
    assert refused.value.status == 502
    assert "appRole" in refused.value.detail
    assert "wrong-secret-id-value" not in str(refused.value)


def test_kubernetes_auth_with_the_servers_own_token(vault: Vault, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(vault.signer.token(FEDERATION))
    vault.review.accounts[token_file.read_text()] = FEDERATION
    auth = {"kubernetes": {"role": "federation"}}
    provider = vault_provider(
        vault.bao.address, auth, vault.source, Settings(service_account_token_file=token_file), path="secret"
    )
    _read(provider)
    assert token_file.read_text() in vault.review.reviews


def test_kubernetes_auth_with_a_secret_ref(vault: Vault) -> None:
    token = vault.signer.token(FEDERATION)
    vault.review.accounts[token] = FEDERATION
    source = ConfigSource({"esi-federation-token": {"token": token}})
    auth = {
        "kubernetes": {
            "mountPath": "kubernetes",
            "role": "federation",
            "secretRef": secret_ref("esi-federation-token", "token"),
        }
    }
    provider = vault_provider(vault.bao.address, auth, source, path="secret")
    _read(provider)
    assert vault.review.reviews[-1] == token


def test_kubernetes_token_the_api_server_does_not_authenticate_is_refused(vault: Vault) -> None:
    source = ConfigSource({"sa": {"token": vault.signer.token(STRANGER)}})
    auth = {"kubernetes": {"role": "federation", "secretRef": secret_ref("sa", "token")}}
    provider = vault_provider(vault.bao.address, auth, source, path="secret")
    with pytest.raises(StoreError, match="kubernetes"):
        provider.read("db-credentials")


def test_kubernetes_service_account_ref_is_refused_in_local_mode_with_a_clear_message(vault: Vault) -> None:
    auth = {"kubernetes": {"role": "federation", "serviceAccountRef": {"name": "esi", "namespace": "ns"}}}
    with pytest.raises(
        StoreError, match=r"serviceAccountRef needs cluster-main's TokenRequest API.*--kubernetes"
    ):
        vault_provider(vault.bao.address, auth, vault.source, path="secret")


def test_kubernetes_service_account_ref_names_its_namespace(vault: Vault) -> None:
    auth = {"kubernetes": {"role": "federation", "serviceAccountRef": {"name": "esi"}}}
    with pytest.raises(StoreError, match=r"serviceAccountRef needs namespace"):
        vault_provider(vault.bao.address, auth, vault.source, Settings(kubernetes=True), path="secret")


def test_jwt_auth_with_a_secret_ref(vault: Vault) -> None:
    auth = {"jwt": {"role": "federation", "secretRef": secret_ref("jwt", "token")}}
    provider = vault_provider(vault.bao.address, auth, vault.source, path="secret")
    logins = vault.logins("jwt")
    _read(provider)
    assert vault.logins("jwt") == logins + 1


def test_jwt_signed_by_another_key_is_refused(vault: Vault) -> None:
    source = ConfigSource({"jwt": {"token": Signer().token(FEDERATION)}})
    auth = {"jwt": {"path": "jwt", "role": "federation", "secretRef": secret_ref("jwt", "token")}}
    provider = vault_provider(vault.bao.address, auth, source, path="secret")
    with pytest.raises(StoreError, match="jwt"):
        provider.read("db-credentials")


def test_revoked_token_is_replaced_by_a_new_login_and_the_read_retried(vault: Vault) -> None:
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, path="secret")
    _read(provider)
    logins = vault.logins("approle")
    vault.bao.client().sys.revoke_prefix("auth/approle/")
    _read(provider)
    assert vault.logins("approle") == logins + 1


def test_concurrent_reads_after_a_revocation_log_in_again_once(vault: Vault) -> None:
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, path="secret")
    _read(provider)
    logins = vault.logins("approle")
    vault.bao.client().sys.revoke_prefix("auth/approle/")
    start = threading.Barrier(8)
    results: list[Any] = []

    def read() -> None:
        start.wait()
        results.append(provider.read("db-credentials"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [DB] * 8
    assert vault.logins("approle") == logins + 1


def test_path_denied_by_policy_does_not_log_in_again(vault: Vault) -> None:
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, path="secret")
    _read(provider)
    logins = vault.logins("approle")
    with pytest.raises(StoreError, match="permission denied"):
        provider.read("forbidden")
    assert vault.logins("approle") == logins


def test_token_is_renewed_when_less_than_a_third_of_its_ttl_remains(vault: Vault) -> None:
    clock = FakeClock()
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, clock=clock, path="secret")
    _read(provider)
    logins, renewals = vault.logins("approle"), vault.renewals()
    clock.now += 30  # half of the 60 s TTL remains
    _read(provider)
    assert vault.renewals() == renewals
    clock.now += 15  # a quarter remains
    _read(provider)
    assert (vault.logins("approle"), vault.renewals()) == (logins, renewals + 1)


def test_expired_token_is_replaced_by_a_new_login(vault: Vault) -> None:
    clock = FakeClock()
    provider = vault_provider(vault.bao.address, APP_ROLE, vault.source, clock=clock, path="secret")
    _read(provider)
    logins = vault.logins("approle")
    clock.now += 61
    _read(provider)
    assert vault.logins("approle") == logins + 1


def test_renewable_static_token_is_renewed(vault: Vault) -> None:
    token = vault.bao.client().auth.token.create(policies=["federation"], ttl="60s", renewable=True)
    source = ConfigSource({"static": {"token": token["auth"]["client_token"]}})
    clock = FakeClock()
    auth = {"tokenSecretRef": secret_ref("static", "token")}
    provider = vault_provider(vault.bao.address, auth, source, clock=clock, path="secret")
    _read(provider)
    renewals = vault.renewals()
    clock.now += 45
    _read(provider)
    assert vault.renewals() == renewals + 1


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({}, "auth must name one of tokenSecretRef, appRole, kubernetes, ldap, userPass, jwt, cert"),
        (
            {"tokenSecretRef": secret_ref("root", "token"), "jwt": {"role": "r"}},
            r"auth names 2 methods \(tokenSecretRef, jwt\); ESO takes exactly one",
        ),
        ({"ldap": {"username": "u"}}, r"auth\.ldap\.secretRef is required"),
        ({"userPass": {"secretRef": secret_ref("root", "token")}}, r"auth\.userPass\.username is required"),
        ({"iam": {"vaultRole": "r", "region": "eu-west-1"}}, r"auth\.iam \(AWS IAM\) is not served"),
        ({"gcp": {"role": "r"}}, r"auth\.gcp \(Google Cloud\) is not served"),
        ({"github": {"token": "t"}}, r"auth\.github is not a vault auth method"),
        ({"cert": {"clientCert": secret_ref("root", "token")}}, r"auth\.cert\.secretRef is required"),
        (
            {"cert": {"clientCert": secret_ref("root", "token"), "secretRef": secret_ref("root", "token")}},
            r"auth\.cert\.clientCert holds no PEM certificate",
        ),
        ({"tokenSecretRef": {"name": "root", "key": "token"}}, "needs namespace"),
        ({"appRole": {"secretRef": secret_ref("approle", "secret-id")}}, "roleId and roleRef"),
        ({"jwt": {"secretRef": secret_ref("jwt", "token")}}, r"auth\.jwt\.role is required"),
        ({"jwt": {"role": "r", "kubernetesServiceAccountToken": {}}}, r"serviceAccountRef must be \{name"),
        (
            {
                "jwt": {
                    "role": "r",
                    "kubernetesServiceAccountToken": {"serviceAccountRef": {"name": "a", "namespace": "b"}},
                }
            },
            "needs cluster-main's TokenRequest API",
        ),
        ({"kubernetes": {"role": "r", "secretRef": {"name": "sa", "namespace": "ns"}}}, "needs key"),
    ],
)
def test_auth_spec_that_cannot_work_is_explained(vault: Vault, auth: dict[str, Any], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        vault_provider(vault.bao.address, auth, vault.source, path="secret")


def test_app_role_of_a_namespace_logs_in_there(vault: Vault) -> None:
    root = vault.bao.client()
    root.sys.create_namespace("team-b")
    vault.bao.enable_kv("kv", namespace="team-b")
    team = vault.bao.client(namespace="team-b")
    team.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="kv")
    team.sys.create_or_update_policy("reader", 'path "kv/data/*" { capabilities = ["read"] }')
    secret_id = _app_role(team, "approle", role_id="team-b-role-id", token_policies=["reader"])
    source = ConfigSource({"team-b": {"secret-id": secret_id}})
    auth = {"appRole": {"roleId": "team-b-role-id", "secretRef": secret_ref("team-b", "secret-id")}}
    provider = vault_provider(vault.bao.address, auth, source, path="kv", namespace="team-b")
    _read(provider)
    in_parent = {**auth, "namespace": "team-b"}
    assert (
        vault_provider(vault.bao.address, in_parent, source, path="kv", namespace="team-b").read(
            "db-credentials"
        )
        == DB
    )


def test_failed_login_is_not_retried_for_a_second(vault: Vault) -> None:
    source = ConfigSource({"approle": {"secret-id": "wrong-secret-id-value"}})
    clock = FakeClock()
    provider = vault_provider(vault.bao.address, APP_ROLE, source, clock=clock, path="secret")
    logins = vault.logins("approle")
    for _ in range(3):
        with pytest.raises(StoreError, match="appRole"):
            provider.read("db-credentials")
    assert vault.logins("approle") == logins + 1
    clock.now += 1.5
    with pytest.raises(StoreError, match="appRole"):
        provider.read("db-credentials")
    assert vault.logins("approle") == logins + 2


def test_a_provider_logs_in_with_the_secret_of_the_snapshot_it_is_built_from(vault: Vault) -> None:
    source = ConfigSource({"approle": {"secret-id": "wrong-secret-id-value"}})
    stale = vault_provider(vault.bao.address, APP_ROLE, source, path="secret")
    source.secrets["approle"]["secret-id"] = vault.secret_id
    rotated = vault_provider(vault.bao.address, APP_ROLE, source, path="secret")
    with pytest.raises(StoreError, match="appRole"):
        stale.read("db-credentials")
    _read(rotated)
