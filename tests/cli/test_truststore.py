"""esi-cli finds the system CA bundle where the image keeps it, not only where its OpenSSL looks.

tests/images/ shows it in an image: the copied esi-cli trusts a CA found only at alpine's path.
"""

from __future__ import annotations

from pathlib import Path

from cli.truststore import fallback_bundle
from hack.certs import create_ca


def bundles(tmp_path: Path) -> list[str]:
    """Two candidate bundle files; only the second exists."""
    existing = tmp_path / "cert.pem"
    existing.write_bytes(create_ca().cert_pem)
    return [str(tmp_path / "missing" / "ca-certificates.crt"), str(existing)]


def test_without_a_default_ca_file_the_first_existing_bundle_is_used(tmp_path: Path) -> None:
    candidates = bundles(tmp_path)

    assert fallback_bundle(None, {}, candidates) == candidates[1]


def test_openssl_s_own_ca_file_is_enough(tmp_path: Path) -> None:
    assert fallback_bundle("/usr/lib/ssl/cert.pem", {}, bundles(tmp_path)) is None


def test_ssl_cert_file_keeps_its_meaning(tmp_path: Path) -> None:
    assert fallback_bundle(None, {"SSL_CERT_FILE": "/somewhere/ca.pem"}, bundles(tmp_path)) is None


def test_no_bundle_anywhere_adds_nothing(tmp_path: Path) -> None:
    assert fallback_bundle(None, {}, [str(tmp_path / "none.pem")]) is None
