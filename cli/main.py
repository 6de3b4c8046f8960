"""``esi-cli``: the command line, and the one place where errors become exit codes.

Start-up time matters (it runs in every injected pod's init container), so this module and everything
it imports use the standard library only, and the HTTP and TLS modules load only when a request is
made.
"""

from __future__ import annotations

import os
import signal
import sys

from cli import __version__, log
from cli.arguments import parse_plain
from cli.errors import CliError, Terminated, UsageError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


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
    values = parse_plain(options)
    if values is None:
        from cli.parser import build_parser  # noqa: PLC0415 - help, usage errors and rarer forms only

        values = vars(build_parser().parse_args(options))
    if values["command"] == "version":
        sys.stdout.write(f"esi-cli {__version__}\n")
        return 0
    from cli import commands  # noqa: PLC0415 - after parsing: --help and version need none of it
    from cli.client import FederationClient  # noqa: PLC0415
    from cli.settings import load_connection, load_secrets  # noqa: PLC0415

    if values["command"] == "whoami":
        return commands.run_whoami(FederationClient(load_connection(values, environ)))
    if values["command"] == "exec" and not command:
        raise UsageError("exec needs a command: esi-cli exec [options] -- CMD [ARG...]")
    secrets = load_secrets(values, environ)
    client = FederationClient(load_connection(values, environ))
    if values["command"] == "exec":
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


if __name__ == "__main__":
    sys.exit(main())
