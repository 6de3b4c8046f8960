"""The real esi-cli with generator references against the real server: esi-init writes generated files
once and only checks env references, exec generates them, and each pod gets its own values."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers_run import ESI_CLI, run_process
from tests.helpers_stack import FederationStack, authorization, running_stack

pytestmark = pytest.mark.slow

GRANTED = {"namespace": "apps", "kind": "Password", "name": "session-key"}


def password(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "Password",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"length": 32, "symbols": 0},
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FederationStack]:
    with running_stack(tmp_path) as running:
        grant = authorization("allow-alpha-generators")
        grant["spec"]["allowedGenerators"] = [GRANTED]
        before = running.reload_count()
        running.write("generators.yaml", password("session-key"), password("not-granted"), grant)
        running.wait_for_reload(before)
        yield running


def issued(stack: FederationStack) -> float:
    metrics = stack.app.extensions["esi.metrics"]
    return float(metrics.credentials_issued.labels("Password")._value.get())


def environment(stack: FederationStack, tmp_path: Path, pod: str, **extra: str) -> dict[str, str]:
    token = tmp_path / f"token-{pod}"
    token.write_text(stack.mint(pod_name=pod))
    return {
        "ESI_SERVER": stack.url,
        "ESI_TOKEN_FILE": str(token),
        "ESI_CA_FILE": str(stack.ca_file),
        "ESI_SERVER_CA": stack.server_ca_file.read_text(),
        "ESI_CLUSTER": stack.cluster,
        "ESI_TIMEOUT": "20s",
        **extra,
    }


def test_esi_init_writes_generated_files_and_leaves_env_references_to_exec(
    stack: FederationStack, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    reference = "generator:apps/Password/session-key.password"
    env = environment(
        stack,
        tmp_path,
        "web-0",
        ESI_DIR=str(secrets_dir),
        ESI_FILES=f"session.key={reference}",
        ESI_ENV=f"SESSION_KEY={reference}",
    )
    before = issued(stack)
    fetched = run_process([str(ESI_CLI), "fetch"], env)
    assert fetched.exit_code == 0, fetched.stderr
    written = (secrets_dir / "session.key").read_text()
    assert len(written) == 32
    assert issued(stack) == before + 1  # the file only: the env reference was checked, not generated
    out = tmp_path / "env.json"
    child = [
        sys.executable,
        "-c",
        "import json,os,sys; json.dump(os.environ['SESSION_KEY'], open(sys.argv[1],'w'))",
    ]
    executed = run_process([str(ESI_CLI), "exec", "--", *child, str(out)], env)
    assert executed.exit_code == 0, executed.stderr
    from_exec = json.loads(out.read_text())
    assert len(from_exec) == 32
    assert issued(stack) == before + 2
    assert written not in fetched.stdout + fetched.stderr + executed.stdout + executed.stderr


def test_two_pods_get_different_generated_values(stack: FederationStack, tmp_path: Path) -> None:
    values = []
    for pod in ("web-0", "web-1"):
        directory = tmp_path / pod
        env = environment(
            stack,
            tmp_path,
            pod,
            ESI_DIR=str(directory),
            ESI_FILES="key=generator:apps/Password/session-key.password",
        )
        assert run_process([str(ESI_CLI), "fetch"], env).exit_code == 0
        values.append((directory / "key").read_text())
    assert values[0] != values[1]


def test_a_denied_env_generator_stops_esi_init_and_generates_nothing(
    stack: FederationStack, tmp_path: Path
) -> None:
    env = environment(
        stack,
        tmp_path,
        "web-0",
        ESI_DIR=str(tmp_path / "secrets"),
        ESI_FILES="key=generator:apps/Password/session-key.password",
        ESI_ENV="OTHER=generator:apps/Password/not-granted.password",
    )
    before = issued(stack)
    denied = run_process([str(ESI_CLI), "fetch"], env)
    assert denied.exit_code == 3, denied.stderr
    assert "generator:apps/Password/not-granted.password" in denied.stderr
    assert issued(stack) == before
