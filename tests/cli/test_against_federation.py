"""The real esi-cli process against the real federation server (``federation_stack``), over TLS."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from tests.cli.helpers_run import ESI_CLI, Run, run_process
from tests.helpers_stack import FederationStack

pytestmark = pytest.mark.slow

# Prints which of the named variables are set, never their values; writes them to a file for comparison.
CHILD = """
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
with open(out, "w") as handle:
    json.dump({name: os.environ.get(name) for name in names}, handle)
print(json.dumps({name: name in os.environ for name in names}))
"""


def environment(stack: FederationStack, token_file: Path, **extra: str) -> dict[str, str]:
    """esi-init's environment, as the webhook renders it (server CA as PEM text), pointed at the stack."""
    return {
        "ESI_SERVER": stack.url,
        "ESI_TOKEN_FILE": str(token_file),
        "ESI_CA_FILE": str(stack.ca_file),
        "ESI_SERVER_CA": stack.server_ca_file.read_text(),
        "ESI_CLUSTER": stack.cluster,
        "ESI_STORE": stack.store,
        "ESI_TIMEOUT": "20s",
        **extra,
    }


@pytest.fixture
def prometheus_token(federation_stack: FederationStack, tmp_path: Path) -> Path:
    """A token of the granted ServiceAccount monitoring/prometheus-esi-client, as a file."""
    path = tmp_path / "token"
    path.write_text(federation_stack.mint())
    return path


def leaks(run: Run, stack: FederationStack, token_file: Path) -> list[str]:
    """Which secret values or the token appear in esi-cli's output (names only, never the text)."""
    texts = {**stack.values, "token": token_file.read_text().strip()}
    return [name for name, text in texts.items() if text in run.stdout or text in run.stderr]


def test_fetch_writes_the_walkthrough_files(
    federation_stack: FederationStack, prometheus_token: Path, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    env = environment(
        federation_stack,
        prometheus_token,
        ESI_FILES="service-a.token=api-keys.service-a-token\ndb/password=db-credentials.password",
        ESI_DIR=str(secrets_dir),
        ESI_FILE_MODE="0440",
    )

    run = run_process([str(ESI_CLI), "fetch"], env)

    assert run.exit_code == 0, run.stderr
    token_path = secrets_dir / "service-a.token"
    matches = token_path.read_text() == federation_stack.values["service-a-token"]
    assert matches
    matches = (secrets_dir / "db" / "password").read_text() == federation_stack.values["password"]
    assert matches
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o440
    assert leaks(run, federation_stack, prometheus_token) == []


def test_exec_hands_the_secrets_to_the_command_as_env_vars(
    federation_stack: FederationStack, prometheus_token: Path, tmp_path: Path
) -> None:
    out = tmp_path / "child-env.json"
    env = environment(
        federation_stack,
        prometheus_token,
        ESI_ENV="MY_APP_DB_PASSWORD=db-credentials.password\nSERVICE_A_TOKEN=vault-prod:api-keys#service-a-token",
    )

    run = run_process(
        [
            str(ESI_CLI),
            "exec",
            "--",
            sys.executable,
            "-c",
            CHILD,
            str(out),
            "MY_APP_DB_PASSWORD",
            "SERVICE_A_TOKEN",
        ],
        env,
    )

    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout) == {"MY_APP_DB_PASSWORD": True, "SERVICE_A_TOKEN": True}
    seen = json.loads(out.read_text())
    matches = seen == {
        "MY_APP_DB_PASSWORD": federation_stack.values["password"],
        "SERVICE_A_TOKEN": federation_stack.values["service-a-token"],
    }
    assert matches
    assert leaks(run, federation_stack, prometheus_token) == []


def test_whoami_shows_the_verified_service_account(
    federation_stack: FederationStack, prometheus_token: Path
) -> None:
    run = run_process([str(ESI_CLI), "whoami"], environment(federation_stack, prometheus_token))

    assert run.exit_code == 0, run.stderr
    assert "system:serviceaccount:monitoring:prometheus-esi-client" in run.stdout
    assert federation_stack.cluster in run.stdout


def test_another_service_account_is_denied_with_exit_3(
    federation_stack: FederationStack, tmp_path: Path
) -> None:
    intruder = tmp_path / "intruder-token"
    intruder.write_text(federation_stack.mint("monitoring", "someone-else"))
    env = environment(
        federation_stack, intruder, ESI_FILES="x=db-credentials.password", ESI_DIR=str(tmp_path / "secrets")
    )

    run = run_process([str(ESI_CLI), "fetch"], env)

    assert run.exit_code == 3
    last = json.loads(run.stderr.splitlines()[-1])
    assert "db-credentials" in last["message"]
    assert not (tmp_path / "secrets" / "x").exists()


def test_a_missing_key_exits_4_naming_it(
    federation_stack: FederationStack, prometheus_token: Path, tmp_path: Path
) -> None:
    env = environment(
        federation_stack,
        prometheus_token,
        ESI_FILES="x=api-keys.service-a-token\ny=no-such-secret.password",
        ESI_DIR=str(tmp_path / "secrets"),
    )

    run = run_process([str(ESI_CLI), "fetch"], env)

    assert run.exit_code == 4
    last = json.loads(run.stderr.splitlines()[-1])
    assert "failing: file" in last["message"]
    assert "no-such-secret" in last["message"]
    assert list((tmp_path / "secrets").glob("*")) == []
