"""A logging filter for gunicorn's error log: exceptions are logged by type, never by their text.

gunicorn logs parser exceptions with ``%s`` (``"Ignored premature client disconnection. %s"``); their
text is the request as received, which may hold an ``Authorization`` header.
"""

from __future__ import annotations

import logging


class ExceptionTextFilter(logging.Filter):
    """Replace every exception among the arguments of a gunicorn record with its type name."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.args`` in place; never drops a record."""
        if not record.name.startswith("gunicorn"):
            return True  # our own messages are written to be logged, exceptions included
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
            record.args = tuple(type(a).__name__ if isinstance(a, BaseException) else a for a in record.args)
        return True
