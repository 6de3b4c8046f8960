"""The ``exec`` hand-off: replace esi-cli with the application, secrets added to its environment.

``os.execvpe`` keeps the process id, so the application receives the signals sent to the container
directly (no wrapper in between to forward them) and its exit code is the container's. The secrets
live only in the new process's environment; nothing is written to disk.
"""

from __future__ import annotations

import os
import sys

from cli.errors import ExecFailedError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn

EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126


def exec_with_env(command: Sequence[str], added: Mapping[str, str]) -> NoReturn:
    """Replace this process with ``command`` (searched on ``PATH``), its environment plus ``added``."""
    environment = dict(os.environ)
    environment.update(added)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], list(command), environment)  # noqa: S606 - an argv, never a shell
    except FileNotFoundError:
        raise ExecFailedError(f"command {command[0]!r} not found", EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise ExecFailedError(f"cannot run command {command[0]!r}: {exc.strerror}", EXIT_CANNOT_RUN) from None
