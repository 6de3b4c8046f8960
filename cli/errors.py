"""esi-cli's one exception tree; each class carries the process exit code it ends with.

Every message is safe to print: it names references, files and the server's ``detail``, never a
secret value or a token. Foreign exceptions (``OSError``, ``ssl.SSLError``, ...) are translated into
this tree where they happen (``raise ... from exc``); ``main`` turns the tree into exit codes::

    CliError              1  anything unexpected: a malformed answer, a file that cannot be written
    ├── UsageError        2  bad options or references, unreadable token or CA file, server said 400/413/415
    ├── DeniedError       3  the server said 401 or 403
    ├── NotFoundError     4  the server said 404
    ├── UnavailableError  5  no good answer before --timeout (connection errors, 429, 502, 503, 504)
    └── ExecFailedError   126 (cannot run) / 127 (not found): exec could not start the command
    Terminated            128 + signal: SIGTERM or SIGINT (a BaseException, so no handler swallows it)
"""

from __future__ import annotations


class CliError(Exception):
    """Base of every error esi-cli reports; ``exit_code`` is what the process ends with."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the HTTP status that caused it, when the server answered


class UsageError(CliError):
    exit_code = 2


class DeniedError(CliError):
    exit_code = 3


class NotFoundError(CliError):
    exit_code = 4


class UnavailableError(CliError):
    exit_code = 5


class ExecFailedError(CliError):
    """``exec`` could not replace itself with the command; 127 when it does not exist, else 126."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived; unwinding runs every ``finally``, so no temp file is left behind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


# Statuses that end the attempt at once, and the error each becomes. Retryable ones are in client.py.
FINAL_STATUS_ERRORS: dict[int, type[CliError]] = {
    400: UsageError,
    401: DeniedError,
    403: DeniedError,
    404: NotFoundError,
    413: UsageError,
    415: UsageError,
}


def error_for_status(status: int, message: str) -> CliError:
    """Return the error that a final HTTP ``status`` becomes; unknown statuses are unexpected (1)."""
    return FINAL_STATUS_ERRORS.get(status, CliError)(message, status)
