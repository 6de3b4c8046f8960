"""``esi-cli``: the command line, and the one place where errors become exit codes.

Start-up time matters (it runs in every injected pod's init container), so this module and everything
it imports use the standard library only, and the HTTP and TLS modules load only when a request is
made.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from cli import __version__, flags, log
from cli.errors import CliError, Terminated, UsageError
from cli.options import Option, add_options

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
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


def main(argv: list[str] | None = None) -> int:
    """Run esi-cli with ``argv`` (default: the process arguments) and return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    previous_handlers = _stop_on_signals()
    try:
        return run(arguments, os.environ)
    except CliError as exc:
        log.error("failed", exc.message, exit_code=exc.exit_code)
        return exc.exit_code
    except SystemExit as exc:  # argparse ends --help with 0 and a bad option with 2
        return exc.code if isinstance(exc.code, int) else 2
    except Terminated as exc:
        log.info("terminated", f"stopped by signal {exc.signum}")
        return exc.exit_code
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def run(arguments: Sequence[str], environ: Mapping[str, str]) -> int:
    """Parse ``arguments`` and run the command; errors propagate as ``CliError``."""
    options, command = split_command(arguments)
    args = build_parser().parse_args(options)
    values = vars(args)
    if args.command == "version":
        sys.stdout.write(f"esi-cli {__version__}\n")
        return 0
    from cli import commands  # noqa: PLC0415 - after parsing: --help and version need none of it
    from cli.client import FederationClient  # noqa: PLC0415
    from cli.settings import load_connection, load_secrets  # noqa: PLC0415

    if args.command == "whoami":
        return commands.run_whoami(FederationClient(load_connection(values, environ)))
    if args.command == "exec" and not command:
        raise UsageError("exec needs a command: esi-cli exec [options] -- CMD [ARG...]")
    secrets = load_secrets(values, environ)
    client = FederationClient(load_connection(values, environ))
    if args.command == "exec":
        return commands.run_exec(client, secrets, command)
    return commands.run_fetch(client, secrets)


def split_command(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``exec``'s arguments at the first ``--``: esi-cli's own options, then the command."""
    if arguments and arguments[0] == "exec" and "--" in arguments:
        cut = list(arguments).index("--")
        return list(arguments[:cut]), list(arguments[cut + 1 :])
    return list(arguments), []


def _stop_on_signals() -> dict[int, Any]:
    """Turn SIGTERM/SIGINT into ``Terminated``; return the handlers they had, to restore at the end."""

    # Unwind instead of dying on the spot, so that temporary files are removed; an exec'd command
    # starts with the default handlers again (execve resets caught signals).
    def stop(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option's help names its environment variable and default."""
    parser = argparse.ArgumentParser(
        prog="esi-cli",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    connection = _options(flags.CONNECTION)
    secrets = _options(flags.SECRETS)
    subcommands.add_parser(
        "fetch",
        parents=[connection, secrets, _options(flags.INSTALL)],
        help="write the secrets to files and exit (or keep them fresh with --refresh-interval)",
        description="Fetch the --file secrets (and check the --env ones) and write each file atomically.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    subcommands.add_parser(
        "exec",
        parents=[connection, secrets],
        usage="esi-cli exec [options] -- CMD [ARG...]",
        help="fetch the --env secrets, then replace esi-cli with CMD, the secrets in its environment",
        description="Fetch the --env secrets and exec CMD with them added to its environment. "
        "Nothing is written to disk; CMD replaces esi-cli, so signals reach it directly.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    subcommands.add_parser(
        "whoami",
        parents=[connection],
        help="print the identity the server verifies and what it may read",
        description="Ask the server who this token is and what it may read; prints JSON.",
        formatter_class=HelpFormatter,
    )
    subcommands.add_parser(
        "version",
        help="print the version",
        description="Print esi-cli's version.",
        formatter_class=HelpFormatter,
    )
    return parser


def _options(declared: tuple[Option, ...]) -> argparse.ArgumentParser:
    group = argparse.ArgumentParser(add_help=False, formatter_class=HelpFormatter)
    add_options(group, declared)
    return group


if __name__ == "__main__":
    sys.exit(main())
