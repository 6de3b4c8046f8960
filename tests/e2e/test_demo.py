"""``make demo``'s walkthrough, run as a user runs it, with assertions on what it shows and leaves behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The demo's secret values are made with these prefixes (hack/demo.py: store_secrets).
DEMO_VALUE = re.compile(r"\b(pw|tok)-[0-9a-f]{16}\b")

# Both tests look for the demo's processes, so they must not run side by side.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def _demo_processes() -> list[str]:
    found = subprocess.run(["pgrep", "-af", "esi-demo-"], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def test_the_walkthrough_runs_every_step_and_leaves_nothing_running() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hack.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    for number in range(1, 11):
        assert f"[{number}/10]" in output
    assert re.search(r"service-a\.token: \d+ bytes, mode 0440", output)
    assert "MY_APP_DB_PASSWORD is set" in output
    assert "system:serviceaccount:monitoring:grafana: exit 3" in output
    assert "HTTP 403" in output
    assert "+ initContainer esi-init: esi-cli fetch" in output
    assert DEMO_VALUE.search(output) is None
    assert "eyJ" not in output  # no JWT
    assert _demo_processes() == []


def test_an_interrupted_walkthrough_stops_what_it_started() -> None:
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "hack.demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("[4/10]"):
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    deadline = time.monotonic() + 10
    while _demo_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _demo_processes() == []
