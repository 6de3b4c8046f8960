"""Logging both servers share: a request's log line costs its formatting and its write, nothing more.

Our JSON lines name no source file, thread or process, so the standard library's per-record work for
them (a walk up the stack for the caller, thread and process names) is switched off, with the switches
the logging documentation lists under "Optimization".
"""

from __future__ import annotations

import logging
import time


def skip_unused_record_fields() -> None:
    """Stop filling in the caller, thread and process of every log record (none is ever logged)."""
    logging._srcfile = None  # the documented switch: no caller lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


_second_prefix: tuple[int, str] = (-1, "")


def utc_timestamp(created: float) -> str:
    """``created`` as ISO 8601 in UTC with milliseconds, e.g. ``2026-11-30T00:43:00.147+00:00``.

    The same text as ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, which
    took a sixth of a request's log line: the date and time up to the second is formatted once per
    second, then only the milliseconds are added.
    """
    global _second_prefix  # noqa: PLW0603  # one tuple, replaced whole: a race formats it twice, no harm
    whole = int(created)
    # Rounded to the microsecond first, as datetime does, then cut to the millisecond.
    micros = round((created - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    second, prefix = _second_prefix
    if second != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second_prefix = (whole, prefix)
    return f"{prefix}.{micros // 1000:03d}+00:00"
