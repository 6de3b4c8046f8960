"""esi-cli's argparse parser: ``--help``, and the command lines that ``cli.arguments`` leaves to it.

A command line in plain form never loads this module (see ``cli.arguments``); help, usage errors and
the rarer forms (abbreviated flags, a value that starts with ``-``) are argparse's, from here.
"""

from __future__ import annotations

import argparse
import os
import sys

from cli.flags import COMMANDS, CONNECTION, INSTALL, SECRETS
from cli.options import Option, add_options

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """\
Fetch secrets from the ESI federation server with this pod's ServiceAccount token, then write them
as files (fetch) or run a command with them as environment variables (exec).

  esi-cli fetch  [options]                  write the --file secrets, exit (or keep them fresh)
  esi-cli exec   [options] -- CMD [ARG...]  replace esi-cli with CMD, --env secrets added to its env
  esi-cli whoami [options]                  what the server sees and allows
  esi-cli version
"""

EPILOG = """\
references:
  REF is [store:]key[.property], split at the last dot, or [store:]key#property when the key itself
  contains a dot (team/app.v2#password). A bare key is the whole secret as a JSON object. Without a
  store the --store default applies. An empty store, key or property is an error.

options come from the command line, else from their ESI_* environment variable, else the default.
  ESI_ENV and ESI_FILES hold one NAME=REF / PATH=REF per line. ESI_SERVER_CA holds the server CA
  PEM itself (--server-ca-file and ESI_SERVER_CA_FILE take precedence).

exit codes:
  0 ok, 1 unexpected failure (malformed answer, file not writable), 2 usage or configuration error
  (also a 400 from the server), 3 denied (401/403), 4 not found (404), 5 server unavailable until
  --timeout; exec: 126 command cannot run, 127 command not found.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, minus its ``shutil`` import (about 4 ms with bz2 and lzma) on every run.

    argparse builds a formatter for each ``add_argument``; without a width it asks
    ``shutil.get_terminal_size``, which ``os`` answers just as well.
    """

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _terminal_width() - 2)


def _terminal_width() -> int:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return 80


# What --help says of each command (COMMANDS gives their options).
COMMAND_TEXTS: dict[str, dict[str, Any]] = {
    "fetch": {
        "help": "write the secrets to files and exit (or keep them fresh with --refresh-interval)",
        "description": "Fetch the --file secrets (and check the --env ones) and write each file atomically.",
        "epilog": EPILOG,
    },
    "exec": {
        "usage": "esi-cli exec [options] -- CMD [ARG...]",
        "help": "fetch the --env secrets, then replace esi-cli with CMD, the secrets in its environment",
        "description": "Fetch the --env secrets and exec CMD with them added to its environment. "
        "Nothing is written to disk; CMD replaces esi-cli, so signals reach it directly.",
        "epilog": EPILOG,
    },
    "whoami": {
        "help": "print the identity the server verifies and what it may read",
        "description": "Ask the server who this token is and what it may read; prints JSON.",
    },
    "version": {"help": "print the version", "description": "Print esi-cli's version."},
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option's help names its environment variable and default."""
    parser = argparse.ArgumentParser(
        prog="esi-cli",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[tuple[Option, ...], argparse.ArgumentParser] = {
        group: _options(group) for group in (CONNECTION, SECRETS, INSTALL)
    }
    for command, option_groups in COMMANDS.items():
        subcommands.add_parser(
            command,
            parents=[groups[group] for group in option_groups],
            formatter_class=HelpFormatter,
            **COMMAND_TEXTS[command],
        )
    return parser


def _options(declared: tuple[Option, ...]) -> argparse.ArgumentParser:
    group = argparse.ArgumentParser(add_help=False, formatter_class=HelpFormatter)
    add_options(group, declared)
    return group
