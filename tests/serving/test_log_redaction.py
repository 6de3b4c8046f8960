"""No log line of either server repeats an exception's text, which may quote the request."""

from __future__ import annotations

import logging
import sys

from gunicorn.http.errors import InvalidHeader, NoMoreData

from federation.logs import JsonFormatter as FederationFormatter
from serving.logfilter import ExceptionTextFilter
from webhook.logs import JsonFormatter as WebhookFormatter

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsb2cifQ.c2lnbmF0dXJl"


def _record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc_info else None
    return logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, message, args, info)


def test_gunicorns_exception_arguments_are_logged_by_type() -> None:
    for exc in (InvalidHeader(f"Authorization Bearer {TOKEN}"), NoMoreData(f"Authorization: Bearer {TOKEN}")):
        record = _record("Ignored premature client disconnection. %s", exc)
        assert ExceptionTextFilter().filter(record)
        assert TOKEN not in record.getMessage()
        assert type(exc).__name__ in record.getMessage()


def test_other_arguments_and_other_loggers_are_left_alone() -> None:
    record = _record("Booting worker with pid: %s", 1234)
    ExceptionTextFilter().filter(record)
    assert record.getMessage() == "Booting worker with pid: 1234"
    ours = logging.LogRecord("webhook.main", logging.ERROR, __file__, 1, "%s", (ValueError("named"),), None)
    ExceptionTextFilter().filter(ours)
    assert ours.getMessage() == "named"


def test_both_formatters_log_an_exception_without_its_message() -> None:
    try:
        raise ValueError(f"a pod env value {TOKEN}")
    except ValueError:
        record = _record("unexpected error", exc_info=True)
    for formatter in (FederationFormatter(), WebhookFormatter()):
        line = formatter.format(record)
        assert "ValueError" in line
        assert TOKEN not in line
