"""The plain-form reader of the command line gives exactly what argparse gives, or leaves it to argparse."""

from __future__ import annotations

import contextlib
import io
import random

import pytest

from cli.arguments import parse_plain
from cli.flags import COMMANDS
from cli.parser import build_parser

FLAGS = sorted({option.flag for groups in COMMANDS.values() for group in groups for option in group})
# Values as manifests write them, and the awkward ones: empty, with "=", with spaces, starting with "-".
VALUES = ["https://127.0.0.1:8443", "db.password=vault:db.password", "x", "", "a=b=c", "two words",
          "-", "-5", "--", "-x", "--server", "fetch", "0440", "90s"]  # fmt: skip
# Arguments that are not a declared flag: help, abbreviations, typos, positionals.
OTHERS = ["-h", "--help", "--serv", "--fil", "--no-such-option", "extra", "--server-ca", "-", "--"]


def argparse_values(arguments: list[str]) -> dict[str, object] | None:
    """argparse's namespace as a dict, or ``None`` where it prints help or an error and exits."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return vars(build_parser().parse_args(arguments))
        except SystemExit:
            return None


def random_command_line(chooser: random.Random) -> list[str]:
    arguments = [chooser.choice([*COMMANDS, *COMMANDS, "rotate", "--server", "-h"])]
    for _ in range(chooser.randint(0, 5)):
        shape = chooser.random()
        flag = chooser.choice(FLAGS)
        if shape < 0.45:
            arguments += [flag, chooser.choice(VALUES)]
        elif shape < 0.8:
            arguments.append(f"{flag}={chooser.choice(VALUES)}")
        elif shape < 0.9:
            arguments.append(flag)
        else:
            arguments.append(chooser.choice(OTHERS))
    return arguments


@pytest.mark.parametrize(
    "arguments",
    [
        ["fetch"],
        ["version"],
        ["whoami", "--server=https://127.0.0.1:8443", "--timeout", "5s"],
        ["fetch", "--server", "https://h", "--file", "a=s:k.p", "--file=b=s:k.q", "--file-mode=0400"],
        ["exec", "--env", "A=s:k.p", "--env=B=s:k.q", "--store", "vault", "--refresh-interval", "1m"],
        ["fetch", "--file=", "--dir=", "--bin-dir", "/esi/bin"],
        ["fetch", "--timeout", "1s", "--timeout", "2s"],
    ],
)
def test_the_forms_manifests_use_are_read_plainly_and_as_argparse_reads_them(arguments: list[str]) -> None:
    plain = parse_plain(arguments)

    assert plain is not None
    assert plain == argparse_values(arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["--help"],
        ["fetch", "--help"],
        ["fetch", "--serv", "https://h"],  # an abbreviation: argparse's to accept
        ["fetch", "--timeout", "-5"],  # a value that starts with "-": argparse's to judge
        ["fetch", "--ca-file=--"],  # argparse drops a "--" value
        ["fetch", "--server"],  # a value missing
        ["version", "--server", "https://h"],  # a flag of another command
        ["fetch", "stray"],
        ["rotate"],
    ],
)
def test_anything_else_is_left_to_argparse(arguments: list[str]) -> None:
    assert parse_plain(arguments) is None


def test_on_thousands_of_random_command_lines_it_agrees_with_argparse_whenever_it_reads_one() -> None:
    chooser = random.Random(20261130)
    read_plainly = 0
    for _ in range(3000):
        arguments = random_command_line(chooser)
        plain = parse_plain(arguments)
        if plain is None:
            continue
        read_plainly += 1
        assert plain == argparse_values(arguments), arguments

    # The comparison means something only if many command lines took the plain path.
    assert read_plainly > 300
