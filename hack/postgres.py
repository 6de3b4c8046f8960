"""A real PostgreSQL from Debian's ``postgresql`` package, on 127.0.0.1 and a free port, for tests.

``running_postgres()`` is the interface: it makes a cluster with ``initdb`` in a fresh temporary
directory, starts ``postgres`` listening on loopback only (no Unix socket outside that directory),
waits until it answers, and afterwards stops it by its process id and removes the directory.

PostgreSQL refuses to run as root: under root (CI, this machine) the cluster belongs to ``nobody``,
and its directory lives under the system's temporary folder, which ``nobody`` can reach. The
superuser ``postgres`` has a random password; clients connect over TCP with it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hack.ports import free_port

START_TIMEOUT = 30.0
UNPRIVILEGED_USER = "nobody"


class PostgresError(RuntimeError):
    """PostgreSQL is not installed, did not start, or a query failed (the message names which)."""


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that holds ``initdb`` and ``postgres``."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for candidate in reversed(versions):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise PostgresError("PostgreSQL is not installed: run hack/system-deps.sh (Debian package postgresql)")


@dataclass
class Postgres:
    """One running cluster."""

    directory: Path
    port: int
    password: str
    bin: Path
    process: subprocess.Popen[bytes]

    def url(self, user: str = "postgres", password: str | None = None, database: str = "postgres") -> str:
        """A libpq URL for ``user``; without ``password``, the superuser's."""
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def template_url(self) -> str:
        """The URL OpenBao's database engine takes, with its ``{{username}}``/``{{password}}`` fields."""
        return (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres?sslmode=disable"
        )

    def psql(self, sql: str, user: str = "postgres", password: str | None = None) -> str:
        """Run ``sql`` as ``user`` over TCP; its output, unaligned, without headers."""
        env = _clean_env({"PGPASSWORD": self.password if password is None else password})
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url_without_password(user),
                "-c",
                sql,
            ],
            capture_output=True,
            env=env,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresError(f"psql as {user!r} failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode().strip()

    def url_without_password(self, user: str) -> str:
        """``user``'s URL without a password (psql takes it from ``PGPASSWORD``)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/postgres?sslmode=disable&connect_timeout=5"

    def roles(self) -> set[str]:
        """Every role name in ``pg_roles``."""
        return set(self.psql("SELECT rolname FROM pg_roles").splitlines())

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown; then a fast one
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(extra)
    env["LC_ALL"] = "C"
    return env


def _run_as() -> dict[str, object]:
    return {"user": UNPRIVILEGED_USER, "group": "nogroup", "extra_groups": []} if os.geteuid() == 0 else {}


def start_postgres() -> Postgres:
    """Initialise and start a cluster; ``PostgresError`` when that fails."""
    binaries = bin_dir()
    directory = Path(tempfile.mkdtemp(prefix="esi-postgres-"))
    password = secrets.token_urlsafe(18)
    as_user = _run_as()
    try:
        if as_user:
            shutil.chown(directory, UNPRIVILEGED_USER, "nogroup")
        password_file = directory / "pwfile"
        password_file.write_text(password + "\n")
        os.chmod(password_file, 0o600)
        if as_user:
            shutil.chown(password_file, UNPRIVILEGED_USER, "nogroup")
        data = directory / "data"
        init = subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            capture_output=True,
            env=_clean_env({}),
            timeout=120,
            check=False,
            cwd=directory,
            **as_user,  # type: ignore[arg-type]
        )
        password_file.unlink()
        if init.returncode != 0:
            raise PostgresError(f"initdb failed: {init.stderr.decode(errors='replace').strip()}")
        port = free_port()
        log = (directory / "postgres.log").open("ab")
        process = subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={directory}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_env({}),
            cwd=directory,
            **as_user,  # type: ignore[arg-type]
        )
        log.close()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server = Postgres(directory, port, password, binaries, process)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Postgres) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise PostgresError(
                f"postgres exited early: {(server.directory / 'postgres.log').read_text()[-2000:]}"
            )
        try:
            server.psql("SELECT 1")
            return
        except PostgresError:
            time.sleep(0.1)
    raise PostgresError(f"postgres did not answer within {START_TIMEOUT} s")


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A PostgreSQL started for the block and stopped (by its pid) after it."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
