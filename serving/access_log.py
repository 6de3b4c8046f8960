"""gunicorn's logger without its access log; both servers name it in their gunicorn options.

Each server writes its own line per request (the audit line, the review line). gunicorn builds every
request's access-log record whenever a ``logconfig_dict`` is set, even with no access log to write it
to, only to drop it (docs/performance.md has what that cost).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger


class NoAccessLogLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger (its error log as configured) without an access log."""

    @property
    def access_log_enabled(self) -> bool:
        """Never: each server writes its own line per request."""
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Nothing to write."""
