"""The vault provider verifies Vault's TLS certificate: system trust, ``caBundle`` or ``caProvider``."""

from __future__ import annotations

import base64
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.errors import StoreError
from hack.openbao import OpenBao, make_tls, running_openbao
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref, vault_provider

DB = {"password": "tls-test-db-password"}


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    directory = tmp_path_factory.mktemp("bao-tls")
    with running_openbao(directory, tls=make_tls(directory, "openbao")) as server:
        server.client().secrets.kv.v2.create_or_update_secret("db-credentials", DB, mount_point="secret")
        yield server


@pytest.fixture
def source(bao: OpenBao) -> ConfigSource:
    assert bao.tls is not None
    return ConfigSource(
        {"vault-token": {"token": bao.root_token}, "vault-ca": {"ca.crt": bao.tls.ca_pem.decode()}}
    )


ROOT_AUTH = {"tokenSecretRef": secret_ref("vault-token", "token")}


def _ca_bundle(bao: OpenBao) -> str:
    assert bao.tls is not None
    return base64.b64encode(bao.tls.ca_pem).decode()


def test_ca_bundle_is_trusted(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.tls_address, ROOT_AUTH, source, path="secret", caBundle=_ca_bundle(bao))
    assert provider.read("db-credentials") == DB
    provider.close()


def test_ca_provider_secret_is_trusted(bao: OpenBao, source: ConfigSource) -> None:
    ca_provider = {"type": "Secret", **secret_ref("vault-ca", "ca.crt")}
    provider = vault_provider(bao.tls_address, ROOT_AUTH, source, path="secret", caProvider=ca_provider)
    assert provider.read("db-credentials") == DB


def test_server_certificate_is_verified_by_default(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.tls_address, ROOT_AUTH, source, path="secret")
    with pytest.raises(StoreError, match="TLS") as refused:
        provider.read("db-credentials")
    assert refused.value.status == 502


def test_ca_bundle_of_another_ca_is_refused(bao: OpenBao, source: ConfigSource, tmp_path: Path) -> None:
    other = base64.b64encode(make_tls(tmp_path, "other").ca_pem).decode()
    provider = vault_provider(bao.tls_address, ROOT_AUTH, source, path="secret", caBundle=other)
    with pytest.raises(StoreError, match="TLS"):
        provider.read("db-credentials")


def test_ca_file_is_removed_when_the_provider_is_gone(bao: OpenBao, source: ConfigSource) -> None:
    provider = vault_provider(bao.tls_address, ROOT_AUTH, source, path="secret", caBundle=_ca_bundle(bao))
    ca_file = Path(provider._ca_file or "")
    assert ca_file.read_bytes() == base64.b64decode(_ca_bundle(bao))
    provider.close()
    del provider
    gc.collect()
    assert not ca_file.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"caProvider": {"type": "ConfigMap", "name": "ca", "namespace": "ns", "key": "ca.crt"}},
            r"caProvider ConfigMap ns/ca key 'ca.crt' does not exist",
        ),
        ({"caProvider": {"type": "Secret", **secret_ref("absent", "ca.crt")}}, "does not exist"),
        ({"caProvider": {"type": "Secret", "name": "vault-ca", "key": "ca.crt"}}, "namespace"),
        ({"caBundle": "not base64!"}, "base64"),
        ({"caBundle": base64.b64encode(b"not a certificate").decode()}, "no PEM certificate"),
        ({"server": "ftp://127.0.0.1:1"}, "https://"),
        ({"version": "v3"}, "v1 or v2"),
        ({"path": ""}, "path"),
        ({"tls": {"certSecretRef": secret_ref("client", "tls.crt")}}, "tls needs certSecretRef"),
        ({"headers": {"X-Vault-Token": "t"}}, "X-Vault"),
        ({"headers": {"X-Team": 1}}, "headers must map"),
    ],
)
def test_connection_spec_that_cannot_work_is_explained(
    bao: OpenBao, source: ConfigSource, spec: dict[str, Any], message: str
) -> None:
    server = spec.pop("server", bao.tls_address)
    with pytest.raises(StoreError, match=message):
        vault_provider(server, ROOT_AUTH, source, **spec)
