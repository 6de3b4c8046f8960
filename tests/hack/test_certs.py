"""The throw-away CA and certificate helpers."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509

from hack import certs


def test_issued_certificate_is_signed_by_the_ca_and_names_every_host() -> None:
    ca = certs.create_ca("test CA")
    leaf = ca.issue(["127.0.0.1", "localhost"]).certificate
    leaf.verify_directly_issued_by(ca.certificate)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


def test_server_certificate_is_not_a_ca_and_serves_server_authentication() -> None:
    leaf = certs.create_ca().issue(["localhost"]).certificate
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificate_serves_client_authentication() -> None:
    leaf = certs.create_ca().issue(["esi-cli"], client=True).certificate
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_a_host_with_whitespace_is_refused() -> None:
    with pytest.raises(certs.CertificateError, match="not a host name"):
        certs.create_ca().issue(["bad host"])


def test_private_key_is_written_readable_by_the_owner_only(tmp_path: Path) -> None:
    ca = certs.create_ca()
    files = certs.write_tls_files(tmp_path, ca, ca.issue(["127.0.0.1"]))
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert_file.stat().st_mode) == 0o644
    assert files.ca_file.read_bytes() == ca.cert_pem
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]


def test_a_loaded_ca_issues_certificates_that_chain_to_the_original() -> None:
    original = certs.create_ca()
    loaded = certs.load_ca(original.cert_pem, original.key_pem)
    loaded.issue(["localhost"]).certificate.verify_directly_issued_by(original.certificate)


def test_a_ca_key_of_another_ca_is_refused() -> None:
    with pytest.raises(certs.CertificateError, match="does not match"):
        certs.load_ca(certs.create_ca().cert_pem, certs.create_ca().key_pem)


def test_command_line_reuses_the_ca_already_in_the_directory(tmp_path: Path) -> None:
    assert certs.main(["--out", str(tmp_path), "--name", "federation"]) == 0
    first_ca = (tmp_path / "ca.crt").read_bytes()
    assert certs.main(["--out", str(tmp_path), "--name", "webhook", "--host", "127.0.0.2"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() == first_ca
    ca = x509.load_pem_x509_certificate(first_ca)
    for name in ("federation", "webhook"):
        leaf = x509.load_pem_x509_certificate((tmp_path / f"{name}.crt").read_bytes())
        leaf.verify_directly_issued_by(ca)
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
