"""Options over ESI_* environment variables over defaults, and every check that ends in exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.errors import UsageError
from cli.main import split_command
from cli.parser import build_parser
from cli.refs import SecretRef
from cli.settings import ENV_VARS, load_connection, load_secrets, parse_file_mode, parse_server_url
from tests.cli.helpers_run import RunCli

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def values(*argv: str) -> dict[str, object]:
    """The parsed options of ``esi-cli fetch ARGV...``."""
    return vars(build_parser().parse_args(["fetch", *argv]))


@pytest.fixture
def token_path(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text("t")
    return str(path)


def test_every_documented_option_has_its_environment_variable(run_cli: RunCli) -> None:
    assert ENV_VARS == {
        "server": "ESI_SERVER",
        "token_file": "ESI_TOKEN_FILE",
        "ca_file": "ESI_CA_FILE",
        "server_ca_file": "ESI_SERVER_CA_FILE",
        "cluster": "ESI_CLUSTER",
        "store": "ESI_STORE",
        "env": "ESI_ENV",
        "file": "ESI_FILES",
        "dir": "ESI_DIR",
        "file_mode": "ESI_FILE_MODE",
        "timeout": "ESI_TIMEOUT",
        "refresh_interval": "ESI_REFRESH_INTERVAL",
        "bin_dir": "ESI_BIN_DIR",
    }
    shown = run_cli("fetch", "--help")
    fetch_help = shown.stdout
    assert shown.exit_code == 0
    for option in ENV_VARS:
        assert f"--{option.replace('_', '-')}" in fetch_help
    for variable in [*ENV_VARS.values(), "ESI_SERVER_CA"]:
        assert variable in fetch_help


def test_connection_comes_from_the_environment(token_path: str, tmp_path: Path) -> None:
    client_ca = tmp_path / "ca.crt"
    client_ca.write_text(PEM)
    environ = {
        "ESI_SERVER": "https://esi-federation.cluster-main.example.com/",
        "ESI_TOKEN_FILE": token_path,
        "ESI_CA_FILE": str(client_ca),
        "ESI_SERVER_CA": PEM,
        "ESI_CLUSTER": "client-cluster-alpha",
        "ESI_TIMEOUT": "5m",
    }

    connection = load_connection(values(), environ)

    assert connection.server == "https://esi-federation.cluster-main.example.com"
    assert connection.token_file == token_path
    assert connection.ca_file == str(client_ca)
    assert connection.server_ca_pem == PEM
    assert connection.cluster == "client-cluster-alpha"
    assert connection.timeout == 300


def test_command_line_options_win_over_the_environment(token_path: str, tmp_path: Path) -> None:
    server_ca = tmp_path / "server-ca.crt"
    server_ca.write_text(PEM.replace("MIIB", "FROMFILE"))
    environ = {"ESI_SERVER": "https://env.example", "ESI_TIMEOUT": "5m", "ESI_SERVER_CA": PEM}

    connection = load_connection(
        values("--server", "https://flag.example:8443", "--token-file", token_path, "--timeout", "7",
               "--server-ca-file", str(server_ca)),
        environ,
    )  # fmt: skip

    assert connection.server == "https://flag.example:8443"
    assert connection.timeout == 7
    assert connection.server_ca_pem is not None
    assert "FROMFILE" in connection.server_ca_pem


def test_the_defaults_hold_when_nothing_is_set(token_path: str) -> None:
    connection = load_connection(values("--server", "https://s.example", "--token-file", token_path), {})
    secrets = load_secrets(values(), {})

    assert connection.timeout == 120
    assert connection.server_ca_pem is None
    assert connection.cluster is None
    assert secrets.file_mode == 0o440
    assert secrets.refresh_interval is None
    assert secrets.envs == secrets.files == ()


def test_the_default_token_file_is_the_projected_one() -> None:
    with pytest.raises(UsageError, match="/var/run/secrets/esi/token"):
        load_connection(values("--server", "https://s.example"), {})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8443",
        "esi-federation.example.com",
        "https://",
        "https://user:pw@host",
        "https://host/?q=1",
        "https://host:99999",
    ],
)
def test_only_plain_https_server_urls_are_accepted(url: str) -> None:
    with pytest.raises(UsageError):
        parse_server_url(url)


def test_a_server_without_url_is_a_usage_error(token_path: str) -> None:
    with pytest.raises(UsageError, match="ESI_SERVER"):
        load_connection(values("--token-file", token_path), {})


def test_an_explicit_client_ca_file_must_exist(token_path: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"/nope/ca\.crt"):
        load_connection(
            values("--server", "https://s", "--token-file", token_path), {"ESI_CA_FILE": "/nope/ca.crt"}
        )


def test_a_server_ca_that_is_not_pem_is_a_usage_error(token_path: str) -> None:
    with pytest.raises(UsageError, match="ESI_SERVER_CA"):
        load_connection(
            values("--server", "https://s", "--token-file", token_path), {"ESI_SERVER_CA": "garbage"}
        )


def test_env_and_file_lists_come_one_per_line(tmp_path: Path) -> None:
    environ = {
        "ESI_STORE": "vault-prod",
        "ESI_ENV": "MY_APP_DB_PASSWORD=db-credentials.password\n\n  OTHER=kube:app#token  \n",
        "ESI_FILES": "service-a.token=api-keys.service-a-token\n/abs/path=x.y",
        "ESI_DIR": str(tmp_path),
        "ESI_REFRESH_INTERVAL": "1m",
    }

    secrets = load_secrets(values(), environ)

    assert [(b.name, b.ref) for b in secrets.envs] == [
        ("MY_APP_DB_PASSWORD", SecretRef("vault-prod", "db-credentials", "password")),
        ("OTHER", SecretRef("kube", "app", "token")),
    ]
    assert [(b.path, b.ref) for b in secrets.files] == [
        (str(tmp_path / "service-a.token"), SecretRef("vault-prod", "api-keys", "service-a-token")),
        ("/abs/path", SecretRef("vault-prod", "x", "y")),
    ]
    assert secrets.refresh_interval == 60


def test_repeated_flags_replace_the_environment_list() -> None:
    secrets = load_secrets(
        values("--env", "A=s:k.p", "--env", "B=s:k.q"), {"ESI_ENV": "C=s:k.r", "ESI_STORE": "s"}
    )

    assert [b.name for b in secrets.envs] == ["A", "B"]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--file", "x"], "PATH=REF"),
        (["--file", "=s:k"], "PATH must name a file"),
        (["--file", "dir/=s:k"], "PATH must name a file"),
        (["--file", "../escape=s:k"], "stay under --dir"),
        (["--file", "a/../../b=s:k"], "stay under --dir"),
        (["--env", "=s:k"], "NAME"),
        (["--env", "A B=s:k"], "NAME"),
        (["--env", "A=s:k", "--env", "A=s:j"], "given twice"),
        (["--file", "a=s:k", "--file", "./a=s:j"], "given twice"),
        (["--file", "a=k.p"], "names no store"),
        (["--file", "a=s:"], "empty key"),
        (["--file", "a=:k"], "empty store"),
        (["--env", "A=s:k#"], "empty property"),
        (["--file-mode", "0999"], "not octal"),
        (["--file-mode", "01777"], "between 0000 and 0777"),
        (["--refresh-interval", "0.5s"], "at least 1s"),
        (["--refresh-interval", "soon"], "invalid duration"),
    ],
)
def test_bad_secret_options_are_usage_errors_naming_the_problem(argv: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        load_secrets(values(*argv), {})


@pytest.mark.parametrize("text", ["0440", "440", "0o440", " 0640 "])
def test_file_modes_are_octal(text: str) -> None:
    assert parse_file_mode(text) in (0o440, 0o640)


@pytest.mark.parametrize("text", ["0", "off", "OFF"])
def test_a_zero_or_off_refresh_interval_means_no_refresh(text: str) -> None:
    assert load_secrets(values("--refresh-interval", text), {}).refresh_interval is None


def test_a_zero_timeout_is_refused(token_path: str) -> None:
    with pytest.raises(UsageError, match="more than zero"):
        load_connection(values("--server", "https://s", "--token-file", token_path, "--timeout", "0"), {})


def test_exec_splits_its_command_at_the_first_double_dash() -> None:
    assert split_command(["exec", "--env", "A=s:k", "--", "app", "--", "-x"]) == (
        ["exec", "--env", "A=s:k"],
        ["app", "--", "-x"],
    )
    assert split_command(["fetch", "--file", "a=s:k"]) == (["fetch", "--file", "a=s:k"], [])


def test_the_server_ca_file_variable_wins_over_the_pem_variable(token_path: str, tmp_path: Path) -> None:
    server_ca = tmp_path / "server-ca.crt"
    server_ca.write_text(PEM.replace("MIIB", "FROMFILE"))
    environ = {"ESI_SERVER_CA_FILE": str(server_ca), "ESI_SERVER_CA": PEM}

    connection = load_connection(values("--server", "https://s", "--token-file", token_path), environ)

    assert connection.server_ca_pem is not None
    assert "FROMFILE" in connection.server_ca_pem


def test_an_unreadable_server_ca_file_is_a_usage_error(token_path: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read server CA file"):
        load_connection(
            values("--server", "https://s", "--token-file", token_path),
            {"ESI_SERVER_CA_FILE": str(tmp_path / "missing.crt")},
        )
