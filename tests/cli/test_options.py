"""One options mechanism and one duration grammar for esi-cli, esi-webhook and esi-federation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli import environment
from cli.durations import MAX_SECONDS, parse_duration
from cli.main import main as esi_cli
from cli.options import REPEATED, SWITCH, Option, OptionError
from cli.settings import ENV_VARS
from federation.main import main as esi_federation
from tests.cli.helpers_run import RunCli
from webhook.main import main as esi_webhook

REFUSED = ["1e3", ".5s", "+5s", "-5s", "1_000", "5 m", "inf", "nan", "99999999999h", "8761h", "5d", "٣s"]
ACCEPTED = [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("0.5s", 0.5), ("8760h", MAX_SECONDS)]
WEBHOOK = ["--cluster-name", "alpha", "--server-url", "https://esi-federation.example.com"]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED)
def test_the_one_grammar_accepts_digits_a_fraction_and_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", REFUSED)
def test_the_one_grammar_refuses_exponents_signs_bare_fractions_and_more_than_a_year(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1e3", ".5s", "+5s", "99999999999h"])
def test_esi_cli_refuses_the_same_durations_with_exit_2(text: str, run_cli: RunCli, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    args = ["--server", "https://esi.example.com", "--token-file", str(token), "--file", "x=s:k"]
    result = run_cli("fetch", *args, "--timeout", text)
    assert result.exit_code == 2
    assert "invalid duration" in result.stderr


@pytest.mark.parametrize("text", ["1e3", ".5s", "+5s", "99999999999h"])
def test_the_webhook_refuses_the_same_durations(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = Path(__file__).parents[2] / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
    assert esi_webhook(["mutate", "-f", str(manifest), *WEBHOOK, "--token-expiration", text]) == 2
    assert "invalid duration" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["1e3", ".5s", "+5s", "99999999999h"])
def test_the_server_refuses_the_same_durations(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--manifests", str(tmp_path), "--insecure-http", "--max-token-lifetime", text]
    assert esi_federation(argv) == 2
    assert "--max-token-lifetime: invalid duration" in capsys.readouterr().err


def test_the_server_reads_a_flags_environment_variable_and_names_it_when_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESI_FEDERATION_STORE_CACHE_TTL", "1e3")
    assert esi_federation(["serve", "--manifests", str(tmp_path), "--insecure-http"]) == 2
    assert "ESI_FEDERATION_STORE_CACHE_TTL: invalid duration '1e3'" in capsys.readouterr().err


def test_a_flag_wins_over_its_variable_which_wins_over_the_default() -> None:
    option = Option("--timeout", "t", env="ESI_TIMEOUT", default="120s", parse=parse_duration)
    assert option.resolve({"timeout": "5s"}, {"ESI_TIMEOUT": "7s"}) == 5.0
    assert option.resolve({}, {"ESI_TIMEOUT": "7s"}) == 7.0
    assert option.resolve({}, {"ESI_TIMEOUT": "  "}) == 120.0
    with pytest.raises(OptionError, match=r"^ESI_TIMEOUT: invalid duration"):
        option.resolve({}, {"ESI_TIMEOUT": "soon"})


def test_switches_and_repeated_options_read_their_variables() -> None:
    switch = Option("--kubernetes", "k", env="ESI_FEDERATION_KUBERNETES", kind=SWITCH)
    assert switch.resolve({}, {"ESI_FEDERATION_KUBERNETES": "true"}) is True
    assert switch.resolve({}, {}) is False
    with pytest.raises(OptionError, match="use true or false"):
        switch.resolve({}, {"ESI_FEDERATION_KUBERNETES": "maybe"})
    repeated = Option("--file", "f", env="ESI_FILES", kind=REPEATED)
    assert repeated.resolve({}, {"ESI_FILES": "a=s:k\n\nb=s:k\n"}) == ["a=s:k", "b=s:k"]
    assert repeated.resolve({"file": ["c=s:k"]}, {"ESI_FILES": "a=s:k"}) == ["c=s:k"]


def test_help_shows_each_options_default_and_variable_the_same_way_in_all_three_programs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert esi_cli(["fetch", "--help"]) == 0
    for program, argv in ((esi_webhook, ["mutate", "--help"]), (esi_federation, ["serve", "--help"])):
        with pytest.raises(SystemExit):
            program(argv)
    shown = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "(default: 120s) [env ESI_TIMEOUT]" in shown
    assert "(default: 600) [env ESI_WEBHOOK_TOKEN_EXPIRATION]" in shown
    assert "(default: 3600s) [env ESI_FEDERATION_MAX_TOKEN_LIFETIME]" in shown


def test_the_webhook_sets_only_variables_esi_cli_reads(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = Path(__file__).parents[2] / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
    assert esi_webhook(["mutate", "-f", str(manifest), *WEBHOOK, "-o", "json"]) == 0
    injected = set(re.findall(r'"name": "(ESI_[A-Z_]+)"', capsys.readouterr().out))
    assert injected
    assert injected <= {*ENV_VARS.values(), environment.SERVER_CA}
