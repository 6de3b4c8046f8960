"""Servers under test as child processes: started on a free loopback port, waited for, and stopped again."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
HOST = "127.0.0.1"


class ServerFailed(Exception):
    """A server did not come up (or died); the message names its log file."""


class ServerProcess:
    """One server process (gunicorn master and its workers, or OpenBao) with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_file = log_file
        with log_file.open("wb") as log:
            self._process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env if env is not None else os.environ),
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id of the server (gunicorn's master)."""
        return self._process.pid

    def wait_ready(self, port: int, context: ssl.SSLContext, path: str = "/healthz") -> None:
        """Poll ``GET path`` over TLS until it answers 200; ``ServerFailed`` if it exits or never does."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerFailed(f"{self.name} exited with {self._process.returncode}; see {self.log_file}")
            if _answers_ok(port, context, path):
                return
            time.sleep(0.1)
        raise ServerFailed(f"{self.name} was not ready in {READY_TIMEOUT_S:.0f} s; see {self.log_file}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's live processes: gunicorn's master and its
        workers, which share the session it was started in."""
        return session_cpu_seconds(self._process.pid)

    def stop(self) -> None:
        """SIGTERM the server (gunicorn stops its workers), then SIGKILL its session if it lingers."""
        if self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # Our own session only: the server and the workers it forked, nothing else.
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=STOP_TIMEOUT_S)


def session_cpu_seconds(session_id: int) -> float:
    """CPU seconds of every live process whose session is ``session_id`` (from /proc; 0 elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process exited while we looked
        # Fields after the parenthesised command name: state ppid pgrp session ... utime(14) stime(15).
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _answers_ok(port: int, context: ssl.SSLContext, path: str) -> bool:
    conn = http.client.HTTPSConnection(HOST, port, context=context, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
