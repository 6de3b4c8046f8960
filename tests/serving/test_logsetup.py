"""serving/logsetup.py: the log lines' timestamp is datetime's text, and records skip unused fields."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import pytest

from serving.logsetup import skip_unused_record_fields, utc_timestamp

EDGES = [0.0, 0.0005, 1.9999995, 1.9999994999, 59.9999996, 1764460980.9999999, 3245374073.536, 2**31 + 0.001]


@pytest.mark.parametrize("seed", range(4))
def test_the_timestamp_is_the_text_datetime_writes(seed: int) -> None:
    chosen = random.Random(seed)
    moments = [chosen.uniform(0, 4e9) for _ in range(20_000)]
    moments += [chosen.randrange(4_000_000_000) + chosen.randrange(1000) / 1000 for _ in range(20_000)]
    for moment in [*EDGES, *moments]:
        expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
        assert utc_timestamp(moment) == expected, moment


def test_records_carry_no_caller_thread_or_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, getattr(logging, switch))  # undone after the test
    skip_unused_record_fields()
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("esi.test.logsetup")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("one line")
    finally:
        logger.removeHandler(handler)
    (record,) = records
    assert record.pathname == "(unknown file)"
    assert (record.thread, record.threadName, record.process, record.processName) == (None, None, None, None)
