"""Throw-away certificate authorities and TLS certificates for tests and the demo.

Everything here is made at run time and lives only as long as the test or demo that made it: nothing
is ever committed. Keys are ECDSA P-256 by default: generated in about a millisecond (an RSA key takes
tens), which matters when every test builds its own CA, and signed with in a fraction of the CPU an RSA
key costs a server in every TLS handshake. ``key_type="rsa-2048"`` makes RSA ones, for comparisons.

Typical use::

    ca = create_ca("client-cluster-alpha")
    leaf = ca.issue(["127.0.0.1", "localhost"])
    files = write_tls_files(tmp_path, ca, leaf)        # ca.crt, tls.crt, tls.key (0600)
    server_ctx = server_ssl_context(files.cert_file, files.key_file)
    client_ctx = client_ssl_context(ca.cert_pem)

Command line (from the repository root)::

    python -m hack.certs --out DIR --host 127.0.0.1 --host localhost [--name tls]

writes ``DIR/ca.crt``, ``DIR/ca.key`` and ``DIR/<name>.crt``, ``DIR/<name>.key``; an existing
``ca.crt``/``ca.key`` pair in DIR is reused, so several servers can share one CA.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_LIFETIME = datetime.timedelta(days=2)
# Certificates start a little in the past so that a clock a few seconds behind still accepts them.
BACKDATE = datetime.timedelta(minutes=5)
PUBLIC_FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o600
KEY_TYPES = ("ec-p256", "rsa-2048")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CertificateError(Exception):
    """A certificate or key cannot be read or made (bad PEM, bad host name, mismatched pair)."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that can issue server and client certificates."""

    certificate: x509.Certificate
    private_key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM: what a client trusts (a cluster's ``ca.crt``, a ``caBundle``)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The CA private key, unencrypted PKCS#8 PEM."""
        return _private_pem(self.private_key)

    def issue(
        self,
        hosts: Sequence[str],
        common_name: str | None = None,
        lifetime: datetime.timedelta = DEFAULT_LIFETIME,
        client: bool = False,
        key_type: str = "ec-p256",
        *,
        organizations: Sequence[str] = (),
    ) -> IssuedCertificate:
        """Issue a certificate for ``hosts`` (DNS names or IP addresses), signed by this CA.

        A server certificate by default; ``client=True`` makes a client-authentication one.
        ``organizations`` become O= attributes of the subject: a kube-apiserver reads them as groups.
        """
        if not hosts and common_name is None:
            raise CertificateError("a certificate needs at least one host or a common name")
        key = generate_key(key_type)
        now = _now()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name or hosts[0], organizations))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
        cert = builder.sign(self.private_key, hashes.SHA256())
        return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM), _private_pem(key))


@dataclass(frozen=True)
class TlsFiles:
    """Where ``write_tls_files`` put the CA certificate, the leaf certificate and its key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def generate_key(key_type: str = "ec-p256") -> PrivateKey:
    """A fresh private key of ``key_type`` (one of ``KEY_TYPES``)."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise CertificateError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")


def create_ca(
    common_name: str = "esi-federation test CA",
    lifetime: datetime.timedelta = DEFAULT_LIFETIME,
    key_type: str = "ec-p256",
) -> CertificateAuthority:
    """Make a new self-signed CA with a fresh key of ``key_type``."""
    key = generate_key(key_type)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def load_ca(cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
    """Rebuild a CA from its PEM certificate and key, checking that the two belong together."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise CertificateError("the CA certificate or key is not valid PEM") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError("the CA key must be an EC or RSA key made by hack.certs")
    if key.public_key() != cert.public_key():
        raise CertificateError("the CA key does not match the CA certificate")
    return CertificateAuthority(cert, key)


def write_tls_files(
    directory: Path, ca: CertificateAuthority, leaf: IssuedCertificate, name: str = "tls"
) -> TlsFiles:
    """Write ``ca.crt``, ``<name>.crt`` and ``<name>.key`` into ``directory``; the key is 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / f"{name}.crt", directory / f"{name}.key")
    write_file(files.ca_file, ca.cert_pem, PUBLIC_FILE_MODE)
    write_file(files.cert_file, leaf.cert_pem, PUBLIC_FILE_MODE)
    write_file(files.key_file, leaf.key_pem, PRIVATE_FILE_MODE)
    return files


def write_file(path: Path, content: bytes, mode: int) -> None:
    """Write ``content`` atomically with ``mode``: a reader sees the old file or the new one, never half.

    The temporary file is created with ``mode`` from the start, so a private key is never readable
    by others, not even for a moment.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, mode)  # the umask may have narrowed the mode given to os.open
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) serving ``cert_file`` with ``key_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def client_ssl_context(ca_pem: bytes | str) -> ssl.SSLContext:
    """A TLS client context that trusts only ``ca_pem`` and checks host names."""
    context = ssl.create_default_context(cadata=ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(char.isspace() for char in host):
                raise CertificateError(f"not a host name or IP address: {host!r}") from None
            names.append(x509.DNSName(host))
    return names


def _private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def load_or_create_ca(directory: Path, common_name: str) -> CertificateAuthority:
    """Reuse ``directory/ca.crt`` + ``ca.key`` when both exist, else make a CA and write them."""
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    if cert_file.exists() and key_file.exists():
        return load_ca(cert_file.read_bytes(), key_file.read_bytes())
    ca = create_ca(common_name)
    directory.mkdir(parents=True, exist_ok=True)
    write_file(key_file, ca.key_pem, PRIVATE_FILE_MODE)
    write_file(cert_file, ca.cert_pem, PUBLIC_FILE_MODE)
    return ca


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hack.certs``: write a CA (reused if present) and one leaf certificate into --out."""
    parser = argparse.ArgumentParser(prog="python -m hack.certs", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    parser.add_argument("--host", action="append", default=[], help="DNS name or IP (repeatable)")
    parser.add_argument("--name", default="tls", help="file name stem of the leaf: <name>.crt/.key")
    parser.add_argument("--ca-name", default="esi-federation test CA", help="common name of a new CA")
    parser.add_argument("--client", action="store_true", help="issue a client certificate")
    args = parser.parse_args(argv)
    hosts = args.host or ["127.0.0.1", "localhost"]
    try:
        ca = load_or_create_ca(args.out, args.ca_name)
        leaf = ca.issue(hosts, client=args.client)
        files = write_tls_files(args.out, ca, leaf, args.name)
    except (CertificateError, OSError) as exc:
        print(f"hack.certs: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {files.ca_file}, {files.cert_file}, {files.key_file} for {', '.join(hosts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
