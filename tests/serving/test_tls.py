"""The reloading SSLContext: one context while the files stay, a new one when they change."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from hack.certs import CertificateAuthority, client_ssl_context, create_ca, write_tls_files
from serving.tls import CertificateLoadError, ReloadingContext


def handshake_subject(server_context: ssl.SSLContext, ca: CertificateAuthority) -> bool:
    """Complete one TLS handshake over a socket pair; True when the client trusts ``ca``'s certificate."""
    server_side, client_side = socket.socketpair()
    result: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_side, server_side=True):
                pass
        except (ssl.SSLError, OSError) as exc:
            result.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ssl_context(ca.cert_pem).wrap_socket(client_side, server_hostname="127.0.0.1"):
            return True
    except ssl.SSLError:
        return False
    finally:
        client_side.close()
        thread.join(5)


def replace_files(tmp_path: Path, ca: CertificateAuthority, cert_file: Path, key_file: Path) -> None:
    """Swap new files in by rename, as kubelet and cert-manager do."""
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    files = write_tls_files(staging, ca, ca.issue(["127.0.0.1"]))
    os.replace(files.key_file, key_file)
    os.replace(files.cert_file, cert_file)


def test_the_context_is_kept_while_the_files_do_not_change(tmp_path: Path) -> None:
    ca = create_ca()
    files = write_tls_files(tmp_path, ca, ca.issue(["127.0.0.1"]))
    reloading = ReloadingContext(str(files.cert_file), str(files.key_file), check_interval=0)
    first = reloading.context()
    assert reloading(None, ssl.create_default_context) is first
    assert handshake_subject(first, ca)


def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    old_ca, new_ca = create_ca("old"), create_ca("new")
    files = write_tls_files(tmp_path, old_ca, old_ca.issue(["127.0.0.1"]))
    reloading = ReloadingContext(str(files.cert_file), str(files.key_file), check_interval=0)
    assert handshake_subject(reloading.context(), old_ca)
    replace_files(tmp_path, new_ca, files.cert_file, files.key_file)
    assert handshake_subject(reloading.context(), new_ca)
    assert not handshake_subject(reloading.context(), old_ca)


def test_a_pair_that_does_not_load_keeps_the_last_good_context(tmp_path: Path) -> None:
    ca = create_ca()
    files = write_tls_files(tmp_path, ca, ca.issue(["127.0.0.1"]))
    reloading = ReloadingContext(str(files.cert_file), str(files.key_file), check_interval=0)
    good = reloading.context()
    other = ca.issue(["127.0.0.1"])
    files.cert_file.write_bytes(other.cert_pem)  # the key does not match this certificate yet
    assert reloading.context() is good
    files.key_file.write_bytes(other.key_pem)
    assert reloading.context() is not good
    assert handshake_subject(reloading.context(), ca)


def test_missing_files_fail_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(CertificateLoadError, match="cannot load TLS certificate"):
        ReloadingContext(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))


def test_the_files_are_looked_at_no_more_than_once_per_interval(tmp_path: Path) -> None:
    old_ca, new_ca = create_ca("old"), create_ca("new")
    files = write_tls_files(tmp_path, old_ca, old_ca.issue(["127.0.0.1"]))
    reloading = ReloadingContext(str(files.cert_file), str(files.key_file), check_interval=3600)
    first = reloading.context()
    replace_files(tmp_path, new_ca, files.cert_file, files.key_file)
    assert reloading.context() is first


def test_no_session_tickets_are_issued(tmp_path: Path) -> None:
    ca = create_ca()
    files = write_tls_files(tmp_path, ca, ca.issue(["127.0.0.1"]))
    assert ReloadingContext(str(files.cert_file), str(files.key_file)).context().num_tickets == 0
