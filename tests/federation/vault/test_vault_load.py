"""Load protection in front of a real OpenBao: identical reads in flight are merged, the cache holds."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator

import pytest

from federation.config.model import StoreConfig
from federation.metrics import Metrics
from federation.settings import Settings
from federation.stores.base import SecretData
from federation.stores.reader import StoreReader
from federation.stores.registry import StoreRegistry
from hack.openbao import OpenBao, running_openbao
from tests.federation.vault.helpers_vault import ConfigSource, secret_ref

DB = {"username": "prometheus", "password": "load-test-db-password"}
BURST = 50


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    with running_openbao(tmp_path_factory.mktemp("bao-load")) as server:
        root = server.client()
        for key in ("db-credentials", "api-keys", "cached"):
            root.secrets.kv.v2.create_or_update_secret(key, DB, mount_point="secret")
        yield server


def _reader(bao: OpenBao, metrics: Metrics, cache_ttl: float = 0.0) -> Callable[[str], SecretData]:
    """``read(key)`` of store ``vault-prod`` through a ``StoreReader``, under one configuration."""
    spec = {
        "server": bao.address,
        "path": "secret",
        "auth": {"tokenSecretRef": secret_ref("vault-token", "token")},
    }
    source = ConfigSource(
        {"vault-token": {"token": bao.root_token}}, {"vault-prod": StoreConfig("vault-prod", "vault", spec)}
    )
    reader = StoreReader(StoreRegistry(Settings()), metrics, cache_ttl=cache_ttl)
    return functools.partial(reader.read, source(), "vault-prod")


def _burst(read_key: Callable[[str], SecretData], key: str) -> list[SecretData]:
    start = threading.Barrier(BURST)
    results: list[SecretData] = []

    def read() -> None:
        start.wait()
        results.append(read_key(key))

    threads = [threading.Thread(target=read) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _store_reads(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "esi_federation_store_reads_total", {"store": "vault-prod", "result": "ok"}
    )
    return value or 0.0


def test_a_burst_of_identical_reads_reaches_vault_far_fewer_times(bao: OpenBao) -> None:
    metrics = Metrics()
    read_key = _reader(bao, metrics)
    read_key("api-keys")  # the provider is built and its token looked up
    results = _burst(read_key, "db-credentials")
    assert results == [DB] * BURST
    vault_reads = bao.audit_count("secret/data/db-credentials", "read")
    assert 1 <= vault_reads <= BURST // 5
    assert _store_reads(metrics) == vault_reads + 1


def test_cache_ttl_answers_a_second_burst_without_vault(bao: OpenBao) -> None:
    read_key = _reader(bao, Metrics(), cache_ttl=60)
    read_key("cached")
    before = bao.audit_count("secret/data/cached", "read")
    assert _burst(read_key, "cached") == [DB] * BURST
    assert bao.audit_count("secret/data/cached", "read") == before == 1
