"""The vault provider reads KV v1 and v2 secrets of a real OpenBao, with ESO's path semantics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.errors import SecretNotFound, StoreError
from federation.stores.base import extract
from hack.openbao import OpenBao, running_openbao
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref, vault_provider

DB = {"username": "prometheus", "password": "kv-test-db-password"}
SETTINGS = {"port": 5432, "enabled": True, "ratio": 0.5, "nothing": None, "nested": {"hosts": ["a", "b"]}}


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    with running_openbao(tmp_path_factory.mktemp("bao-kv")) as server:
        root = server.client()
        root.secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        root.secrets.kv.v2.create_or_update_secret("app/settings", SETTINGS, mount_point="secret")
        root.secrets.kv.v2.create_or_update_secret("gone", {"a": "b"}, mount_point="secret")
        root.secrets.kv.v2.delete_latest_version_of_secret("gone", mount_point="secret")
        server.enable_kv("legacy", version=1)
        root.secrets.kv.v1.create_or_update_secret("db-credentials", DB, mount_point="legacy")
        server.enable_kv("team/kv")
        root.secrets.kv.v2.create_or_update_secret("app/config", {"mode": "team"}, mount_point="team/kv")
        yield server


@pytest.fixture(scope="module")
def source(bao: OpenBao) -> ConfigSource:
    return ConfigSource({"vault-token": {"token": bao.root_token}})


ROOT_AUTH = {"tokenSecretRef": secret_ref("vault-token", "token")}


def test_kv_v2_whole_secret_is_its_data_map(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret", version="v2")
    data = provider.read("db-credentials")
    assert data == DB
    assert json.loads(extract(data, "db-credentials", None)) == DB


def test_kv_v2_is_the_default_version(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    assert extract(provider.read("db-credentials"), "db-credentials", "password") == DB["password"]


def test_kv_v1_property_is_read_without_a_data_segment(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="legacy", version="v1")
    assert extract(provider.read("db-credentials"), "db-credentials", "username") == "prometheus"
    assert bao.audit_count("legacy/db-credentials", "read") >= 1


def test_non_string_values_stay_in_the_map_and_extract_as_json(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    data = provider.read("app/settings")
    assert data == SETTINGS
    assert extract(data, "app/settings", "port") == "5432"
    assert extract(data, "app/settings", "enabled") == "true"
    assert extract(data, "app/settings", "nothing") == "null"
    assert json.loads(extract(data, "app/settings", "nested")) == {"hosts": ["a", "b"]}
    assert json.loads(extract(data, "app/settings", None)) == SETTINGS


@pytest.mark.parametrize(("mount", "version"), [("secret", "v2"), ("legacy", "v1")])
def test_missing_key_is_not_found(bao: OpenBao, source: ConfigSource, mount: str, version: str) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path=mount, version=version)
    with pytest.raises(SecretNotFound, match="no-such-key"):
        provider.read("no-such-key")


def test_missing_property_is_not_found(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    with pytest.raises(SecretNotFound, match="no-such-property"):
        extract(provider.read("db-credentials"), "db-credentials", "no-such-property")


def test_deleted_kv_v2_version_is_not_found(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    with pytest.raises(SecretNotFound):
        provider.read("gone")


@pytest.mark.parametrize("key", ["db-credentials", "secret/db-credentials", "secret/data/db-credentials"])
def test_key_may_repeat_the_mount_as_eso_accepts(bao: OpenBao, source: ConfigSource, key: str) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    assert provider.read(key) == DB


@pytest.mark.parametrize("key", ["secret/db-credentials", "secret/data/db-credentials"])
def test_store_without_path_takes_the_mount_from_the_key(
    bao: OpenBao, source: ConfigSource, key: str
) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source)
    assert provider.read(key) == DB


def test_mount_of_several_segments_and_nested_keys_are_read(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="team/kv")
    assert provider.read("app/config") == {"mode": "team"}
    assert bao.audit_count("team/kv/data/app/config", "read") >= 1


def test_mount_given_with_its_data_suffix_is_accepted(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret/data")
    assert provider.read("db-credentials") == DB


@pytest.mark.parametrize("key", ["../../sys/policy/default", "a/./b", "a//b", ""])
def test_key_that_is_not_a_plain_path_never_reaches_vault(
    bao: OpenBao, source: ConfigSource, key: str
) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    with pytest.raises(SecretNotFound):
        provider.read(key)
    assert bao.audit_count("sys/policy/default") == 0


def test_path_denied_by_policy_is_a_store_error_not_a_value(bao: OpenBao, tmp_path: Path) -> None:
    root = bao.client()
    root.sys.create_or_update_policy("read-app-only", 'path "secret/data/app/*" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=["read-app-only"], ttl="1h")["auth"]["client_token"]
    source = ConfigSource({"limited": {"token": token}})
    provider = vault_provider(
        bao.address, {"tokenSecretRef": secret_ref("limited", "token")}, source, path="secret"
    )
    assert provider.read("app/settings") == SETTINGS
    with pytest.raises(StoreError) as denied:
        provider.read("db-credentials")
    assert type(denied.value) is StoreError
    assert denied.value.status == 502
    assert "permission denied" in denied.value.detail
    assert token not in str(denied.value)
    assert DB["password"] not in str(denied.value)


def test_namespace_is_sent_as_x_vault_namespace(bao: OpenBao, source: ConfigSource) -> None:
    root = bao.client()
    root.sys.create_namespace("team-a")
    bao.enable_kv("kv", namespace="team-a")
    in_namespace = bao.client(namespace="team-a")
    in_namespace.secrets.kv.v2.create_or_update_secret("db-credentials", {"password": "ns"}, mount_point="kv")
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="kv", namespace="team-a")
    assert provider.read("db-credentials") == {"password": "ns"}
    outside = vault_provider(bao.address, ROOT_AUTH, source, path="kv")
    with pytest.raises(SecretNotFound):
        outside.read("db-credentials")


def test_a_missing_token_secret_is_a_store_error_naming_it(bao: OpenBao) -> None:
    provider = vault_provider(bao.address, ROOT_AUTH, ConfigSource(), path="secret")
    with pytest.raises(StoreError, match="Secret external-secrets/vault-token key 'token' does not exist"):
        provider.read("db-credentials")


def test_a_refused_token_is_a_store_error_without_the_token(bao: OpenBao) -> None:
    source = ConfigSource({"vault-token": {"token": "s.not-a-real-token-value"}})
    provider = vault_provider(bao.address, ROOT_AUTH, source, path="secret")
    with pytest.raises(StoreError) as refused:
        provider.read("db-credentials")
    assert refused.value.status == 502
    assert "not-a-real-token-value" not in str(refused.value)


def test_a_nested_property_path_is_read_as_eso_reads_it_with_gjson(
    bao: OpenBao, source: ConfigSource
) -> None:
    data = vault_provider(bao.address, ROOT_AUTH, source, path="secret").read("app/settings")
    assert extract(data, "app/settings", "nested.hosts.1") == "b"
    assert json.loads(extract(data, "app/settings", "nested.hosts")) == ["a", "b"]
    with pytest.raises(SecretNotFound, match=r"'nested\.ports'"):
        extract(data, "app/settings", "nested.ports")
