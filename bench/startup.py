"""esi-cli's whole-process wall time next to ``python -c pass``; its imports; the bundle's start-up.

The baseline runs the interpreter that runs esi-cli: the one in the console script's shebang (the venv's
``python``). Its real path is checked to be a compiled binary, because a shell shim (pyenv's) in front of
the interpreter alone costs tens of milliseconds and would flatter the ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hack.esi_cli_bundle import build_inputs

RUN_TIMEOUT_S = 60.0
BUILD_TIMEOUT_S = 120.0
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


class StartupError(Exception):
    """A process under measurement failed, or the interpreter is not a real binary."""


@dataclass(frozen=True)
class Interpreter:
    """The interpreter esi-cli runs under: the path its shebang names, and the binary behind it."""

    path: str
    binary: str


def interpreter_of(script: Path) -> Interpreter:
    """The interpreter in ``script``'s shebang; ``StartupError`` if it resolves to anything but a binary."""
    first_line = script.read_bytes().split(b"\n", 1)[0]
    if not first_line.startswith(b"#!"):
        raise StartupError(f"{script} has no shebang line")
    words = first_line[2:].decode().split()
    path = words[0]
    if os.path.basename(path) == "env" and len(words) > 1:
        # "#!/usr/bin/env python3": the interpreter is whatever PATH finds, as the kernel would run it.
        path = shutil.which(words[1]) or words[1]
    binary = os.path.realpath(path)
    with open(binary, "rb") as handle:
        if handle.read(4) != b"\x7fELF":
            raise StartupError(f"{path} resolves to {binary}, a script (a shim?), not the interpreter binary")
    return Interpreter(path, binary)


def wall_time(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Seconds from spawning ``argv`` to its exit; ``StartupError`` unless it exits 0."""
    started = time.perf_counter()
    completed = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        # esi-cli's messages never carry a secret value, so its stderr is safe to show.
        detail = completed.stderr.decode(errors="replace").strip()[-500:]
        raise StartupError(f"{argv[0]} exited {completed.returncode}: {detail}")
    return elapsed


def median_wall_times(
    commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]], runs: int, warmups: int = 2
) -> dict[str, float]:
    """The median wall time of each named command, the commands interleaved run by run."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for attempt in range(warmups + runs):
        for name, (argv, env) in commands.items():
            elapsed = wall_time(argv, env)
            if attempt >= warmups:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def import_profile(python: str, module: str, cwd: Path, top: int = 8) -> dict[str, Any]:
    """``python -X importtime -c "import MODULE"`` in a fresh process, summed up in milliseconds."""
    completed = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise StartupError(f"import {module} failed: {completed.stderr.strip()[-300:]}")
    return summarize_importtime(completed.stderr, module, top)


def summarize_importtime(stderr: str, module: str, top: int = 8) -> dict[str, Any]:
    """The total of ``module``, and the heaviest imports by their own (self) and cumulative time."""
    entries = []
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            entries.append((name, int(self_us), int(cumulative_us), len(indent) // 2))
    total = next((cum for name, _, cum, _ in reversed(entries) if name == module), 0)
    by_self = sorted(entries, key=lambda e: e[1], reverse=True)[:top]
    top_level = sorted((e for e in entries if e[3] == 0), key=lambda e: e[2], reverse=True)[:top]
    return {
        "command": f'python -X importtime -c "import {module}"',
        "total_ms": round(total / 1000, 2),
        "modules_imported": len(entries),
        "heaviest_self_ms": {name: round(us / 1000, 2) for name, us, _, _ in by_self},
        "heaviest_top_level_cumulative_ms": {name: round(cum / 1000, 2) for name, _, cum, _ in top_level},
    }


def bundle_executable(dist: Path) -> Path:
    """Where ``hack/build-esi-cli.sh`` puts the self-contained esi-cli's launcher by default."""
    return dist / "esi-cli" / "esi-cli"


def ensure_bundle(repo: Path, log_file: Path) -> tuple[Path | None, str | None]:
    """The self-contained esi-cli, built with ``hack/build-esi-cli.sh`` if it is missing or older than
    ``cli/`` or the build's own files; ``(None, reason)`` when it cannot be had within ``BUILD_TIMEOUT_S``."""
    executable = bundle_executable(repo / "dist")
    script = repo / "hack" / "build-esi-cli.sh"
    if executable.is_file() and not _older_than_sources(executable, build_inputs(repo)):
        return executable, None
    if not script.is_file():
        return None, "hack/build-esi-cli.sh does not exist yet, and there is no dist/esi-cli"
    if shutil.which("bash") is None:
        return None, "bash is not installed, so hack/build-esi-cli.sh cannot run"
    failure = _run_build(script, repo, log_file)
    if failure is not None:
        return None, failure
    executable = bundle_executable(repo / "dist")
    if not executable.is_file():
        return None, f"hack/build-esi-cli.sh finished but {executable} does not exist; see {log_file}"
    return executable, None


def _run_build(script: Path, repo: Path, log_file: Path) -> str | None:
    with log_file.open("wb") as log:
        # A session of its own, so that a build over the time limit is stopped with every child.
        process = subprocess.Popen(
            ["bash", str(script)], cwd=repo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return f"building it took longer than {BUILD_TIMEOUT_S:.0f} s (stopped); see {log_file}"
    if returncode != 0:
        return f"hack/build-esi-cli.sh exited {returncode}; see {log_file}"
    return None


def _older_than_sources(executable: Path, sources: Sequence[Path]) -> bool:
    built = executable.stat().st_mtime
    return any(path.stat().st_mtime > built for path in sources)
