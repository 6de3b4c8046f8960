"""Helpers of esi-cli's tests: ways to run esi-cli and read what it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import main
from tests.cli.helpers_stub_federation import StubFederation

REPO_ROOT = Path(__file__).resolve().parents[2]
ESI_CLI = Path(sys.executable).with_name("esi-cli")


@dataclass
class Run:
    """The outcome of one esi-cli run."""

    exit_code: int
    stdout: str
    stderr: str

    def log_lines(self) -> list[dict[str, object]]:
        """stderr parsed as the product's log format: one JSON object per line."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]

    def events(self) -> list[object]:
        """The ``event`` of each log line, in order."""
        return [line["event"] for line in self.log_lines()]


class RunCli:
    """Callable that runs esi-cli in-process."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> Run:
        """Run ``esi-cli ARGV...``."""
        self.capsys.readouterr()
        exit_code = main(list(argv))
        captured = self.capsys.readouterr()
        return Run(exit_code, captured.out, captured.err)


def run_process(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    """Run a real esi-cli (or any) process with only ``env`` (plus PATH) as its environment."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    done = subprocess.run(
        argv, env=environment, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
    )
    return Run(done.returncode, done.stdout, done.stderr)


def stub_value(stub: StubFederation, key: str, prop: str) -> str:
    """What the stub holds at ``vault-prod:key.prop``."""
    return stub.secrets[("vault-prod", key)][prop]
