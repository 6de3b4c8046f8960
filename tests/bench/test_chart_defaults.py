"""What the storm takes from a default chart install: the serve flags it keeps and the key type it copies."""

from __future__ import annotations

import pytest

from bench.chart_defaults import ChartError, _serve_flags, chart_defaults, key_type_of
from hack.certs import create_ca


def test_the_source_address_and_tls_files_are_replaced_and_every_other_flag_kept() -> None:
    args = [
        "serve",
        "--kubernetes",
        "--bind",
        "0.0.0.0:8443",
        "--tls-cert",
        "/tls/tls.crt",
        "--tls-key",
        "/k",
    ]
    args += ["--store-cache-ttl", "1s", "--workers", "2"]
    assert list(_serve_flags(args)) == ["--store-cache-ttl", "1s", "--workers", "2"]


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_the_key_type_is_read_from_the_pem(key_type: str) -> None:
    leaf = create_ca(key_type=key_type).issue(["127.0.0.1"], key_type=key_type)
    assert key_type_of(leaf.key_pem) == key_type


def test_a_key_the_benchmark_cannot_reproduce_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ChartError, match="does not reproduce"):
        key_type_of(pem)


def test_a_default_install_generates_p256_and_keeps_the_store_cache() -> None:
    defaults = chart_defaults()
    assert defaults.key_type == "ec-p256"
    flags = list(defaults.serve_flags)
    assert flags[flags.index("--store-cache-ttl") + 1] == "3s"
    assert "--kubernetes" not in flags
