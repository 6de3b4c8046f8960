"""esi-cli exec: the secrets reach the command's environment, nothing reaches the disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.errors import ExecFailedError
from cli.exec import app_environment, exec_with_env
from tests.cli.helpers_run import ESI_CLI, RunCli, run_process, stub_value
from tests.cli.helpers_stub_federation import StubFederation

# Reports which variables are set (never their values) and writes them to a file for comparison.
CHILD = """
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
with open(out, "w") as handle:
    json.dump({"pid": os.getpid(), "env": {name: os.environ.get(name) for name in names}}, handle)
print(json.dumps({name: name in os.environ for name in names}))
"""


def test_exec_runs_the_command_with_the_secrets_added_to_its_environment(
    stub: StubFederation, connect_args: list[str], tmp_path: Path, secrets_dir: Path
) -> None:
    out = tmp_path / "child.json"

    process = subprocess.Popen(
        [str(ESI_CLI), "exec", *connect_args, "--store", "vault-prod",
         "--env", "MY_APP_DB_PASSWORD=db-credentials.password",
         "--env", "APP_PASSWORD=team/app.v2#password",
         "--", sys.executable, "-c", CHILD, str(out), "MY_APP_DB_PASSWORD", "APP_PASSWORD", "KEPT"],
        env={"PATH": os.environ["PATH"], "KEPT": "from-the-parent"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert json.loads(stdout) == {"MY_APP_DB_PASSWORD": True, "APP_PASSWORD": True, "KEPT": True}
    child = json.loads(out.read_text())
    assert child["pid"] == process.pid  # exec replaced esi-cli: same process, so signals reach the app
    matches = child["env"] == {
        "MY_APP_DB_PASSWORD": stub_value(stub, "db-credentials", "password"),
        "APP_PASSWORD": stub_value(stub, "team/app.v2", "password"),
        "KEPT": "from-the-parent",
    }
    assert matches
    assert list(secrets_dir.iterdir()) == []
    assert stub_value(stub, "db-credentials", "password") not in stderr


class Handed(Exception):
    """Raised by the stand-in for ``os.execvpe``, which, like the real one, must never return."""


def test_exec_sends_only_the_env_references(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[tuple[str, list[str], dict[str, str]]] = []

    def execvpe(file: str, args: list[str], env: dict[str, str]) -> None:
        handed.append((file, args, env))
        raise Handed

    monkeypatch.setattr(os, "execvpe", execvpe)

    with pytest.raises(Handed):
        run_cli(
            "exec", *connect_args, "--store", "vault-prod",
            "--env", "A=api-keys.service-a-token", "--file", "ignored=db-credentials.password",
            "--", "app", "--flag",
        )  # fmt: skip

    ((file, args, env),) = handed
    assert (file, args) == ("app", ["app", "--flag"])
    assert "A" in env
    assert stub.secret_requests()[0].body == {
        "secrets": [{"store": "vault-prod", "key": "api-keys", "property": "service-a-token"}]
    }


def test_exec_without_a_command_is_a_usage_error(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    assert run_cli("exec", *connect_args, "--env", "A=vault-prod:k.p").exit_code == 2
    assert run_cli("exec", *connect_args, "--env", "A=vault-prod:k.p", "--").exit_code == 2
    assert stub.requests == []


def test_exec_without_env_references_is_a_usage_error(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    assert run_cli("exec", *connect_args, "--", "true").exit_code == 2
    assert stub.requests == []


def test_exec_of_a_missing_command_exits_127(stub: StubFederation, connect_args: list[str]) -> None:
    run = run_process(
        [str(ESI_CLI), "exec", *connect_args, "--env", "A=vault-prod:api-keys.service-a-token", "--",
         "no-such-command-anywhere"]
    )  # fmt: skip

    assert run.exit_code == 127
    assert "no-such-command-anywhere" in run.log_lines()[-1]["message"]  # type: ignore[operator]


def test_exec_denied_exits_3_and_does_not_start_the_command(
    stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    run = run_process(
        [str(ESI_CLI), "exec", *connect_args, "--env", "A=other-store:k.p", "--", "touch", str(marker)]
    )

    assert run.exit_code == 3
    assert not marker.exists()


def test_a_signal_sent_to_esi_cli_reaches_the_application(
    stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    app = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n"
        f"pathlib.Path({str(ready)!r}).write_text('up')\n"
        "time.sleep(30)\n"
    )
    process = subprocess.Popen(
        [str(ESI_CLI), "exec", *connect_args, "--env", "A=vault-prod:api-keys.service-a-token",
         "--", sys.executable, "-c", app],
        env={"PATH": os.environ["PATH"]},
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=10) == 42


def test_the_application_gets_the_containers_environment_plus_the_secrets() -> None:
    current = {"LD_LIBRARY_PATH": "/app/lib", "LC_CTYPE": "C", "A": "old"}

    assert app_environment(current, {"A": "new", "B": "2"}) == {
        "LD_LIBRARY_PATH": "/app/lib",
        "LC_CTYPE": "C",
        "A": "new",
        "B": "2",
    }
    assert current["A"] == "old"


def test_the_application_starts_with_default_signal_dispositions(
    stub: StubFederation, connect_args: list[str]
) -> None:
    # Python ignores SIGPIPE; an exec'd command would inherit that unless esi-cli restores the default.
    run = run_process(
        [str(ESI_CLI), "exec", *connect_args, "--env", "A=vault-prod:api-keys.service-a-token",
         "--", "cat", "/proc/self/status"]
    )  # fmt: skip

    assert run.exit_code == 0, run.stderr
    (ignored,) = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("SigIgn:")]
    assert int(ignored, 16) & (1 << (signal.SIGPIPE - 1)) == 0
    assert int(ignored, 16) & (1 << (signal.SIGXFSZ - 1)) == 0


def test_a_failed_exec_leaves_the_signal_handlers_as_they_were() -> None:
    before = signal.getsignal(signal.SIGPIPE)
    with pytest.raises(ExecFailedError):
        exec_with_env(["/nonexistent/esi-test-app"], {"A": "1"})
    assert signal.getsignal(signal.SIGPIPE) == before
