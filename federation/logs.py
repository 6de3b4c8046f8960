"""JSON logs: one object per line on stderr. Fields come from the message and the record's extras."""

from __future__ import annotations

import logging
import sys
from typing import Any

from serving import fastjson
from serving.logfilter import ExceptionTextFilter
from serving.logsetup import skip_unused_record_fields, utc_timestamp

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; exceptions keep only their type, never a message that may hold data."""
        entry: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return fastjson.log_line(entry)


def configure_logging(level: str = "info") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    skip_unused_record_fields()


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error log as JSON too; no access log (audit lines replace it)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"exception_text": {"()": ExceptionTextFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
                "filters": ["exception_text"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False}},
    }
