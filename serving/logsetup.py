"""Logging both servers share: a request's log line costs its formatting and its write, nothing more.

Our JSON lines name no source file, thread or process, so the standard library's per-record work for
them (a walk up the stack for the caller, thread and process names) is switched off, with the switches
the logging documentation lists under "Optimization".
"""

from __future__ import annotations

import logging


def skip_unused_record_fields() -> None:
    """Stop filling in the caller, thread and process of every log record (none is ever logged)."""
    logging._srcfile = None  # the documented switch: no caller lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
