"""The ``exec`` hand-off: replace esi-cli with the application, secrets added to its environment.

``os.execvpe`` keeps the process id, so the application receives the signals sent to the container
directly (no wrapper in between to forward them) and its exit code is the container's. The secrets
live only in the new process's environment; nothing is written to disk.
"""

from __future__ import annotations

import os
import signal
import sys

from cli.errors import ExecFailedError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn

EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126


def exec_with_env(command: Sequence[str], added: Mapping[str, str]) -> NoReturn:
    """Replace this process with ``command`` (searched on ``PATH``), its environment plus ``added``."""
    environment = app_environment(os.environ, added)
    sys.stdout.flush()
    sys.stderr.flush()
    previous = _restore_default_signals()
    try:
        os.execvpe(command[0], list(command), environment)  # noqa: S606 - an argv, never a shell
    except FileNotFoundError:
        raise ExecFailedError(f"command {command[0]!r} not found", EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise ExecFailedError(f"cannot run command {command[0]!r}: {exc.strerror}", EXIT_CANNOT_RUN) from None
    finally:
        # Only reached when execve failed (or was replaced in a test): this process goes on, and a
        # default SIGPIPE would kill it on the next write to a closed socket.
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _restore_default_signals() -> dict[int, Any]:
    # Python ignores SIGPIPE and SIGXFSZ at start-up, and ignored signals survive execve: the application
    # must start with the defaults, as it would without esi-cli (subprocess does the same for its children).
    previous = {}
    for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
        if hasattr(signal, name):
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, signal.SIG_DFL)
    return previous


def app_environment(current: Mapping[str, str], added: Mapping[str, str]) -> dict[str, str]:
    """The application's environment: esi-cli's own, exactly as the container gave it, plus ``added``.

    The self-contained build sets nothing in it: its loader takes the library path as an option, not
    as ``LD_LIBRARY_PATH``, and its embedded Python neither coerces the locale nor reads ``PYTHON*``.
    """
    return {**current, **added}
