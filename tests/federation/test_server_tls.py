"""esi-federation serve's gunicorn keeps one TLS context per worker and follows the files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.server import GunicornServer
from federation.settings import Settings
from hack.certs import create_ca, write_tls_files
from serving.tls import ReloadingContext


def test_every_connection_is_served_by_one_reloading_context(tmp_path: Path) -> None:
    ca = create_ca()
    files = write_tls_files(tmp_path, ca, ca.issue(["127.0.0.1"]))
    server = GunicornServer(
        Settings(manifests_dir=tmp_path, tls_cert=files.cert_file, tls_key=files.key_file)
    )
    hook = server.cfg.ssl_context
    assert isinstance(hook, ReloadingContext)
    assert hook.cert_file == str(files.cert_file)
    first = hook(server.cfg, lambda: pytest.fail("gunicorn's per-connection default must not be used"))
    assert hook(server.cfg, lambda: None) is first
    assert first.num_tickets == 0


def test_files_that_do_not_load_stop_the_start_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(manifests_dir=tmp_path, tls_cert=tmp_path / "tls.crt", tls_key=tmp_path / "tls.key")
    with pytest.raises(SystemExit) as stopped:
        GunicornServer(settings)
    assert stopped.value.code == 1
    assert f"cannot load TLS certificate {tmp_path / 'tls.crt'}" in capsys.readouterr().err
