"""esi-cli fetch and whoami against the stub federation server, run in-process through ``main``."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path

import pytest

from hack.ports import free_port
from tests.cli.helpers_run import RunCli, stub_value
from tests.cli.helpers_stub_federation import StubFederation


def holds(path: Path, expected: str) -> bool:
    """Whether ``path`` holds exactly ``expected`` (a helper, so a failure never prints the value)."""
    return path.read_bytes() == expected.encode()


def test_fetch_writes_each_secret_to_its_file_with_mode_0440(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    result = run_cli(
        "fetch",
        *connect_args,
        "--store",
        "vault-prod",
        "--file",
        "service-a.token=api-keys.service-a-token",
        "--file",
        "db/password=db-credentials#password",
    )

    assert result.exit_code == 0
    token_file = secrets_dir / "service-a.token"
    assert holds(token_file, stub_value(stub, "api-keys", "service-a-token"))
    assert holds(secrets_dir / "db" / "password", stub_value(stub, "db-credentials", "password"))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o440
    assert sorted(path.name for path in secrets_dir.iterdir()) == ["db", "service-a.token"]


def test_fetch_sends_the_token_cluster_ca_and_references_in_order(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], token: str, tmp_path: Path
) -> None:
    client_ca = tmp_path / "ca.crt"
    client_ca.write_text("-----BEGIN CERTIFICATE-----\nclient cluster CA\n-----END CERTIFICATE-----\n")

    result = run_cli(
        "fetch",
        *connect_args,
        "--cluster",
        "client-cluster-alpha",
        "--ca-file",
        str(client_ca),
        "--file",
        "a=vault-prod:api-keys.service-a-token",
        "--file",
        "b=vault-prod:db-credentials",
    )

    assert result.exit_code == 0
    (request,) = stub.secret_requests()
    assert request.method == "POST"
    assert request.authorization == f"Bearer {token}"
    assert request.content_type == "application/json"
    assert request.body == {
        "cluster": "client-cluster-alpha",
        "caCert": client_ca.read_text(),
        "secrets": [
            {"store": "vault-prod", "key": "api-keys", "property": "service-a-token"},
            {"store": "vault-prod", "key": "db-credentials"},
        ],
    }


def test_a_bare_key_writes_the_whole_secret_as_json(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    result = run_cli("fetch", *connect_args, "--file", "all.json=vault-prod:db-credentials")

    assert result.exit_code == 0
    written = json.loads((secrets_dir / "all.json").read_text())
    assert written == stub.secrets[("vault-prod", "db-credentials")]


def test_a_key_with_a_dot_is_fetched_with_hash_property(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    result = run_cli("fetch", *connect_args, "--file", "app=vault-prod:team/app.v2#password")

    assert result.exit_code == 0
    assert stub.secret_requests()[0].body["secrets"] == [  # type: ignore[index]
        {"store": "vault-prod", "key": "team/app.v2", "property": "password"}
    ]
    assert holds(secrets_dir / "app", stub_value(stub, "team/app.v2", "password"))


def test_files_and_references_come_from_environment_variables(
    run_cli: RunCli,
    stub: StubFederation,
    token_file: Path,
    secrets_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESI_SERVER", stub.url)
    monkeypatch.setenv("ESI_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("ESI_SERVER_CA", stub.server_ca_pem)
    monkeypatch.setenv("ESI_STORE", "vault-prod")
    monkeypatch.setenv(
        "ESI_FILES", "\n service-a.token=api-keys.service-a-token\n\nuser=db-credentials.username\n"
    )
    monkeypatch.setenv("ESI_ENV", "MY_APP_DB_PASSWORD=db-credentials.password")
    monkeypatch.setenv("ESI_DIR", str(secrets_dir))
    monkeypatch.setenv("ESI_FILE_MODE", "0400")
    monkeypatch.setenv("ESI_CLUSTER", "client-cluster-alpha")

    result = run_cli("fetch")

    assert result.exit_code == 0
    assert holds(secrets_dir / "user", "prometheus")
    assert stat.S_IMODE((secrets_dir / "user").stat().st_mode) == 0o400
    # The env reference is asked for too (so esi-init fails early), but never written anywhere.
    assert len(stub.secret_requests()[0].body["secrets"]) == 3  # type: ignore[index, arg-type]
    assert sorted(path.name for path in secrets_dir.iterdir()) == ["service-a.token", "user"]


def test_an_absolute_file_path_is_used_as_given(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere" / "token"

    result = run_cli("fetch", *connect_args, "--file", f"{target}=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0
    assert holds(target, stub_value(stub, "api-keys", "service-a-token"))


def test_a_secret_is_written_without_an_added_newline(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    stub.secrets[("vault-prod", "multi")] = {"pem": "line one\nline two", "empty": ""}

    result = run_cli(
        "fetch", *connect_args, "--file", "pem=vault-prod:multi.pem", "--file", "e=vault-prod:multi.empty"
    )

    assert result.exit_code == 0
    assert (secrets_dir / "pem").read_bytes() == b"line one\nline two"
    assert (secrets_dir / "e").read_bytes() == b""


def test_an_invalid_reference_is_a_usage_error_before_any_request(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    for ref in ("vault-prod:", ":key", "vault-prod:key.", "vault-prod:key#", "vault-prod:.prop"):
        result = run_cli("fetch", *connect_args, "--file", f"x={ref}")
        assert result.exit_code == 2, ref
    assert stub.requests == []


def test_a_reference_without_a_store_is_a_usage_error_naming_it(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    result = run_cli("fetch", *connect_args, "--file", "x=db-credentials.password")

    assert result.exit_code == 2
    assert "db-credentials.password" in result.log_lines()[-1]["message"]  # type: ignore[operator]
    assert stub.requests == []


def test_a_denied_store_exits_3_naming_the_reference_and_the_detail(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    result = run_cli(
        "fetch",
        *connect_args,
        "--file",
        "ok=vault-prod:api-keys.service-a-token",
        "--file",
        "no=other-store:api-keys.service-a-token",
    )

    assert result.exit_code == 3
    message = str(result.log_lines()[-1]["message"])
    assert "not granted: other-store:api-keys.service-a-token" in message
    assert "failing: file" in message
    assert "other-store:api-keys.service-a-token" in message.split("failing:")[1]
    assert list(secrets_dir.iterdir()) == []


def test_a_bad_token_exits_3(run_cli: RunCli, stub: StubFederation, connect_args: list[str]) -> None:
    stub.token = "another-token"

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 3
    assert "the bearer token was not accepted" in str(result.log_lines()[-1]["message"])


def test_a_missing_key_exits_4_and_writes_nothing(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    result = run_cli(
        "fetch",
        *connect_args,
        "--file",
        "ok=vault-prod:api-keys.service-a-token",
        "--file",
        "missing=vault-prod:no-such-key.password",
    )

    assert result.exit_code == 4
    message = str(result.log_lines()[-1]["message"])
    assert "no-such-key" in message
    assert "missing=vault-prod:no-such-key.password" in message
    assert list(secrets_dir.iterdir()) == []


def test_a_bad_request_is_final_and_exits_2(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    stub.answer_next(400)

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 2
    assert len(stub.requests) == 1


def test_503_twice_then_200_succeeds_after_two_logged_retries(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    stub.answer_next(503, times=2)

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0
    assert len(stub.requests) == 3
    retries = [line for line in result.log_lines() if line["event"] == "retry"]
    assert [line["status"] for line in retries] == [503, 503]
    assert holds(secrets_dir / "x", stub_value(stub, "api-keys", "service-a-token"))


@pytest.mark.parametrize("status", [429, 502, 504])
def test_other_retryable_statuses_are_retried(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], status: int
) -> None:
    stub.answer_next(status)

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0
    assert len(stub.requests) == 2


def test_retry_after_is_honoured(run_cli: RunCli, stub: StubFederation, connect_args: list[str]) -> None:
    stub.answer_next(503, retry_after="1")

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0
    first, second = stub.requests
    assert second.at - first.at >= 1.0
    (retry,) = [line for line in result.log_lines() if line["event"] == "retry"]
    assert float(retry["delay_s"]) >= 1.0  # type: ignore[arg-type]


def test_a_retry_after_beyond_the_timeout_gives_up_at_once_with_exit_5(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    stub.answer_next(503, retry_after="30")
    started = time.monotonic()

    result = run_cli(
        "fetch", *connect_args, "--timeout", "3s", "--file", "x=vault-prod:api-keys.service-a-token"
    )

    assert result.exit_code == 5
    assert time.monotonic() - started < 3
    assert "scripted 503" in str(result.log_lines()[-1]["message"])


def test_a_server_down_until_the_timeout_exits_5_with_retries_in_the_log(
    run_cli: RunCli, connect_args: list[str], token: str, stub: StubFederation
) -> None:
    dead_port = free_port()  # nothing listens on it
    args = [*connect_args]
    args[args.index("--server") + 1] = f"https://127.0.0.1:{dead_port}"
    started = time.monotonic()

    result = run_cli("fetch", *args, "--timeout", "2s", "--file", "x=vault-prod:api-keys.service-a-token")

    elapsed = time.monotonic() - started
    assert result.exit_code == 5
    assert 1.5 <= elapsed < 6
    retries = [line for line in result.log_lines() if line["event"] == "retry"]
    assert len(retries) >= 3
    assert all("ConnectionRefusedError" in str(line["reason"]) for line in retries)
    assert token not in result.stderr


def test_the_log_never_holds_the_token_or_a_value(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], token: str
) -> None:
    stub.answer_next(503)

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:db-credentials.password")

    assert result.exit_code == 0
    leaked = [
        text for text in (token, stub_value(stub, "db-credentials", "password")) if text in result.stderr
    ]
    assert leaked == []
    assert result.stdout == ""


def test_an_untrusted_server_certificate_is_a_configuration_error(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    args = [*connect_args]
    args.remove("--server-ca-file")
    args.remove(str(stub.server_ca_file))

    result = run_cli("fetch", *args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 2
    assert "not trusted" in str(result.log_lines()[-1]["message"])
    assert stub.requests == []


def test_whoami_prints_the_identity_the_server_sees(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], token: str
) -> None:
    result = run_cli("whoami", *connect_args[:-4])

    assert result.exit_code == 0
    assert json.loads(result.stdout)["identity"]["subject"] == (
        "system:serviceaccount:monitoring:prometheus-esi-client"
    )
    (request,) = stub.requests
    assert (request.method, request.path, request.authorization) == ("GET", "/v1/whoami", f"Bearer {token}")


def test_whoami_with_a_refused_token_exits_3(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    stub.token = "someone-else"

    result = run_cli("whoami", *connect_args[:-4])

    assert result.exit_code == 3


def test_a_missing_token_file_is_a_usage_error(run_cli: RunCli, stub: StubFederation, tmp_path: Path) -> None:
    result = run_cli(
        "fetch", "--server", stub.url, "--token-file", str(tmp_path / "absent"), "--file", "x=vault-prod:k"
    )

    assert result.exit_code == 2
    assert "absent" in str(result.log_lines()[-1]["message"])


def test_nothing_to_fetch_is_a_usage_error(run_cli: RunCli, connect_args: list[str]) -> None:
    assert run_cli("fetch", *connect_args).exit_code == 2


def test_a_server_path_prefix_is_kept(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    args = [*connect_args]
    args[args.index("--server") + 1] = f"{stub.url}/federation/"

    result = run_cli("fetch", *args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 4  # the stub has no such route: what matters is where esi-cli went
    assert stub.requests[0].path == "/federation/v1/secrets"


def test_installing_into_a_bin_dir_needs_the_self_contained_build(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], tmp_path: Path, secrets_dir: Path
) -> None:
    result = run_cli(
        "fetch",
        *connect_args,
        "--bin-dir",
        str(tmp_path / "bin"),
        "--file",
        "x=vault-prod:api-keys.service-a-token",
    )

    assert result.exit_code == 2
    assert "self-contained build" in str(result.log_lines()[-1]["message"])
    assert not (tmp_path / "bin").exists()
    assert stub.requests == []


def test_a_chunked_answer_is_read_whole(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    stub.chunked = True

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0
    assert holds(secrets_dir / "x", stub_value(stub, "api-keys", "service-a-token"))


@pytest.mark.parametrize("content", ["", "  \n", "two\nlines", "with space", "tab\there"])
def test_a_token_file_without_one_bearer_token_is_a_usage_error(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], token_file: Path, content: str
) -> None:
    token_file.write_text(content)

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 2
    assert str(token_file) in str(result.log_lines()[-1]["message"])
    assert stub.requests == []


def test_a_server_ca_that_is_not_a_valid_certificate_is_a_usage_error(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*connect_args]
    args.remove("--server-ca-file")
    args.remove(str(stub.server_ca_file))
    monkeypatch.setenv(
        "ESI_SERVER_CA", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    )

    result = run_cli("fetch", *args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 2
    assert "not a valid PEM certificate" in str(result.log_lines()[-1]["message"])
    assert stub.requests == []


def test_an_answer_that_ends_with_the_connection_is_read_whole(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    stub.until_close = True  # and the stub closes without a TLS close_notify, as many servers do

    result = run_cli("fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token")

    assert result.exit_code == 0, result.stderr
    assert holds(secrets_dir / "x", stub_value(stub, "api-keys", "service-a-token"))


def test_timeout_is_a_deadline_for_the_whole_run_against_a_dripping_server(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str]
) -> None:
    # Every answer arrives one byte per 50 ms (~10 s each): each read is quick, the whole is not.
    stub.drip_s = 0.05
    started = time.monotonic()
    result = run_cli("fetch", *connect_args, "--timeout", "2s", "--file", "t=vault-prod:api-keys")
    elapsed = time.monotonic() - started
    assert result.exit_code == 5
    assert elapsed < 3.5
    assert "within --timeout 2s" in result.stderr


def test_timeout_is_a_deadline_for_a_server_that_never_finishes_the_handshake(
    run_cli: RunCli, connect_args: list[str]
) -> None:
    # It accepts the connection and then says nothing: only the deadline can end the attempts.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        arguments = [*connect_args, "--server", f"https://127.0.0.1:{port}", "--timeout", "1s"]
        result = run_cli("fetch", *arguments, "--file", "t=vault-prod:api-keys")

    assert result.exit_code == 5
    assert "within --timeout 1s" in result.stderr
    assert "no complete answer within" in result.stderr
