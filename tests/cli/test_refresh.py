"""fetch --refresh-interval (the sidecar): rewrite only what changed, survive a bad round, stop cleanly."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.client import FederationClient
from cli.commands import refresh_files
from cli.parser import build_parser
from cli.settings import load_connection, load_secrets
from tests.cli.helpers_run import ESI_CLI, Run
from tests.cli.helpers_stub_federation import StubFederation


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_refresh_round_rewrites_only_changed_files_and_survives_a_failed_round(
    stub: StubFederation, connect_args: list[str], secrets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = vars(
        build_parser().parse_args(
            ["fetch", *connect_args, "--store", "vault-prod",
             "--file", "a=api-keys.service-a-token", "--file", "b=db-credentials.username"]
        )
    )  # fmt: skip
    secrets = load_secrets(options, {})
    client = FederationClient(load_connection(options, {}))
    actions: list[Callable[[], None]] = [
        lambda: None,  # round 1: nothing changed
        lambda: stub.answer_next(403),  # round 2: denied; the files stay as they were
        lambda: stub.secrets[("vault-prod", "db-credentials")].update(username="renamed"),  # round 3
    ]
    for path, content in (
        ("a", stub.secrets[("vault-prod", "api-keys")]["service-a-token"]),
        ("b", "prometheus"),
    ):
        (secrets_dir / path).write_text(content)
        (secrets_dir / path).chmod(0o440)
    inode_a = (secrets_dir / "a").stat().st_ino
    inode_b = (secrets_dir / "b").stat().st_ino

    refresh_files(client, secrets, 1.0, lambda _seconds: actions.pop(0)(), rounds=3)

    assert (secrets_dir / "a").stat().st_ino == inode_a
    assert (secrets_dir / "b").stat().st_ino != inode_b
    assert (secrets_dir / "b").read_text() == "renamed"
    assert len(stub.secret_requests()) == 3
    assert sorted(path.name for path in secrets_dir.iterdir()) == ["a", "b"]
    failed = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "refresh-failed" in line]
    assert [line["exit_code"] for line in failed] == [3]


def test_a_refresh_loop_collects_cycles_although_the_self_contained_build_starts_without(
    stub: StubFederation, connect_args: list[str]
) -> None:
    options = vars(build_parser().parse_args(["fetch", *connect_args, "--file", "a=vault-prod:api-keys"]))
    client = FederationClient(load_connection(options, {}))
    gc.disable()  # as hack/esi-cli-python.c starts the self-contained esi-cli
    try:
        refresh_files(client, load_secrets(options, {}), 1.0, lambda _seconds: None, rounds=1)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_the_sidecar_keeps_files_fresh_until_sigterm(
    stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    process = subprocess.Popen(
        [str(ESI_CLI), "fetch", *connect_args, "--store", "vault-prod", "--refresh-interval", "1s",
         "--file", "token=api-keys.service-a-token", "--file", "user=db-credentials.username"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for((secrets_dir / "user").exists)
        token_inode = (secrets_dir / "token").stat().st_ino
        stub.secrets[("vault-prod", "db-credentials")]["username"] = "rotated"
        wait_for(lambda: (secrets_dir / "user").read_text() == "rotated")
        rounds = len(stub.secret_requests())
        wait_for(lambda: len(stub.secret_requests()) > rounds + 1)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    run = Run(process.returncode, stdout, stderr)

    assert run.exit_code == 128 + signal.SIGTERM
    assert (secrets_dir / "token").stat().st_ino == token_inode
    refreshed = [line for line in run.log_lines() if line["event"] == "refreshed"]
    assert [line["files"] for line in refreshed] == [[str(secrets_dir / "user")]]
    assert sorted(path.name for path in secrets_dir.iterdir()) == ["token", "user"]
    assert run.events()[-1] == "terminated"
