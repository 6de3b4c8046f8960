"""The command line itself: commands, help, version, and argparse's own errors as exit codes."""

from __future__ import annotations

import tomllib

from cli import __version__
from tests.cli.helpers_run import ESI_CLI, REPO_ROOT, RunCli, run_process


def test_version_prints_the_package_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    run = run_process([str(ESI_CLI), "version"])

    assert run.exit_code == 0
    assert run.stdout == f"esi-cli {project['version']}\n"
    assert __version__ == project["version"]
    assert run.stderr == ""


def test_help_explains_commands_references_and_exit_codes(run_cli: RunCli) -> None:
    result = run_cli("--help")

    assert result.exit_code == 0
    for text in ("fetch", "exec", "whoami", "version", "[store:]key[.property]", "team/app.v2#password",
                 "exit codes", "3 denied", "5 server unavailable"):  # fmt: skip
        assert text in result.stdout


def test_exec_help_shows_where_the_command_goes(run_cli: RunCli) -> None:
    result = run_cli("exec", "--help")

    assert result.exit_code == 0
    assert "esi-cli exec [options] -- CMD [ARG...]" in result.stdout


def test_no_command_or_an_unknown_one_or_option_is_a_usage_error(run_cli: RunCli) -> None:
    assert run_cli().exit_code == 2
    assert run_cli("rotate").exit_code == 2
    assert run_cli("fetch", "--no-such-option").exit_code == 2
    assert run_cli("version", "--server", "https://x").exit_code == 2
