"""The system trust store, wherever the image keeps it.

esi-cli verifies the server with the image's CA certificates unless ``--server-ca-file`` /
``ESI_SERVER_CA`` names them. OpenSSL looks only in the directory it was built for: in the
self-contained esi-cli, which carries Debian's OpenSSL into any image (docs/images.md), that is
``/usr/lib/ssl``, which alpine, RHEL or distroless images do not have. When OpenSSL finds no CA file
there (and ``SSL_CERT_FILE`` names none), the first of the usual CA bundle files is loaded instead,
as Go's crypto/x509 does.
"""

from __future__ import annotations

import contextlib
import os
import ssl

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# Debian, Ubuntu, alpine (ca-certificates), Gentoo; RHEL, Fedora, CentOS; openSUSE; OpenELEC; RHEL 7+;
# alpine's and busybox-based images' own bundle.
BUNDLE_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)


def system_context(bundle_files: Sequence[str] = BUNDLE_FILES) -> ssl.SSLContext:
    """A client context with the system's CA certificates: OpenSSL's default paths, plus the first of
    ``bundle_files`` when OpenSSL has no CA file of its own."""
    context = ssl.create_default_context()
    bundle = fallback_bundle(ssl.get_default_verify_paths().cafile, os.environ, bundle_files)
    if bundle is not None:
        # An unreadable bundle trusts nothing: the server's certificate is then refused, with the reason.
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_verify_locations(cafile=bundle)
    return context


def fallback_bundle(
    default_cafile: str | None, environ: Mapping[str, str], bundle_files: Sequence[str]
) -> str | None:
    """The CA bundle file to load besides OpenSSL's defaults: None when OpenSSL found its CA file
    (``default_cafile``) or ``SSL_CERT_FILE`` names one, else the first of ``bundle_files`` that exists."""
    if default_cafile is not None or environ.get("SSL_CERT_FILE"):
        return None
    return next((candidate for candidate in bundle_files if os.path.isfile(candidate)), None)
