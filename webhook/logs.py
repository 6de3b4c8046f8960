"""One JSON object per log line, on stderr.

Callers pass structured fields with ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import traceback
from typing import Any

from serving import fastjson
from serving.logfilter import ExceptionTextFilter
from serving.logsetup import skip_unused_record_fields, utc_timestamp

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as compact JSON; an exception as its type (``error``) and frames."""
        line: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the frames, never the message: it may quote the request (a pod's env values).
            kind, _, trace = record.exc_info
            line["error"] = kind.__name__
            line["frames"] = "".join(traceback.format_tb(trace)) if trace else ""
        return fastjson.log_line(line)


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: everything (gunicorn's loggers too) as JSON on stderr."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "stream": "ext://sys.stderr",
        "filters": ["exception_text"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"exception_text": {"()": ExceptionTextFilter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": [], "propagate": True, "level": level.upper()},
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure(level: str) -> None:
    """Install the JSON configuration in this process."""
    logging.config.dictConfig(logging_config(level))
    logging.captureWarnings(True)
    skip_unused_record_fields()
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
