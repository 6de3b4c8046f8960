"""What every benchmark shares: a work directory, TLS files for 127.0.0.1, and where the programs are."""

from __future__ import annotations

import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import Target
from bench.processes import HOST, ServerProcess
from hack.certs import TlsFiles, client_ssl_context, create_ca, write_tls_files
from hack.ports import free_port

REPO = Path(__file__).resolve().parent.parent
# bench/*.log is ignored by git: the servers' logs stay there for a look after a run.
LOG_DIR = REPO / "bench"


@dataclass(frozen=True)
class ServerTls:
    """A server's certificate files and a client context that trusts them."""

    files: TlsFiles
    client_context: ssl.SSLContext


@dataclass(frozen=True)
class Environment:
    """Shared by the benchmarks of one run."""

    work: Path
    tls: TlsFiles
    client_context: ssl.SSLContext
    bin_dir: Path

    def program(self, name: str) -> str:
        """A console script of the venv (esi-federation, esi-webhook, esi-cli)."""
        return str(self.bin_dir / name)

    def child_env(self) -> dict[str, str]:
        """The environment of server processes: ours, without settings a server would pick up."""
        return {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ESI_", "PROMETHEUS_", "VAULT_", "BAO_"))
        }

    def start_server(
        self, name: str, argv: list[str], ready_path: str = "/healthz", tls: ServerTls | None = None
    ) -> tuple[ServerProcess, Target]:
        """Start ``argv`` (which gets ``--bind`` and the TLS flags appended) and wait until it answers.

        The certificate is the run's ECDSA one unless ``tls`` names another.
        """
        files, context = (tls.files, tls.client_context) if tls else (self.tls, self.client_context)
        port = free_port()
        full = [
            *argv,
            "--bind",
            f"{HOST}:{port}",
            "--tls-cert",
            str(files.cert_file),
            "--tls-key",
            str(files.key_file),
        ]
        process = ServerProcess(name, full, LOG_DIR / f"{name}.log", self.child_env())
        try:
            process.wait_ready(port, context, ready_path)
        except BaseException:
            process.stop()
            raise
        return process, Target(HOST, port, context)

    def issue_tls(self, name: str, key_type: str) -> ServerTls:
        """A new CA and a certificate for 127.0.0.1, both with keys of ``key_type``, under ``work/name``."""
        ca = create_ca(f"esi-federation bench CA ({key_type})", key_type=key_type)
        files = write_tls_files(self.work / name, ca, ca.issue([HOST, "localhost"], key_type=key_type))
        return ServerTls(files, client_ssl_context(ca.cert_pem))


def create_environment(work: Path) -> Environment:
    """A fresh CA and a certificate for 127.0.0.1 under ``work``; the programs next to this interpreter."""
    ca = create_ca("esi-federation bench CA")
    tls = write_tls_files(work / "tls", ca, ca.issue([HOST, "localhost"]))
    return Environment(
        work=work,
        tls=tls,
        client_context=client_ssl_context(ca.cert_pem),
        bin_dir=Path(sys.executable).parent,
    )
