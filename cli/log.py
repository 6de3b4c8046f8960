"""The product's log format: one JSON object per line on stderr.

Callers pass only safe fields (references, paths, statuses, delays); nothing here ever receives a
secret value or a token. Kept to ``json`` and ``time`` so that it costs nothing at start-up.
"""

from __future__ import annotations

import json
import sys
import time

LOGGER = "esi-cli"


def log(level: str, event: str, message: str, **fields: object) -> None:
    """Write one line to stderr: ``time``, ``level``, ``logger``, ``event``, ``message``, then ``fields``."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+00:00"
    record: dict[str, object] = {
        "time": stamp,
        "level": level,
        "logger": LOGGER,
        "event": event,
        "message": message,
    }
    record.update(fields)
    sys.stderr.write(json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def info(event: str, message: str, **fields: object) -> None:
    """Log at level ``info``."""
    log("info", event, message, **fields)


def warning(event: str, message: str, **fields: object) -> None:
    """Log at level ``warning``."""
    log("warning", event, message, **fields)


def error(event: str, message: str, **fields: object) -> None:
    """Log at level ``error``."""
    log("error", event, message, **fields)
