"""The retry loop with a fake clock: backoff, jitter, Retry-After, the deadline, final statuses."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence

import pytest

from cli import client as client_module
from cli.client import MAX_DELAY, Answer, FederationClient, parse_retry_after, problem_detail
from cli.errors import CliError, DeniedError, NotFoundError, UnavailableError, UsageError
from cli.settings import Connection

OK = Answer(200, "application/json", None, b'{"secrets": []}')


class FakeClock:
    """Time that moves only when esi-cli sleeps (or an attempt takes time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedClient(FederationClient):
    """A client whose attempts return scripted answers (or fail to connect) instead of using the network."""

    def __init__(
        self, script: Sequence[Answer | None], timeout: float = 120, attempt_seconds: float = 0
    ) -> None:
        self.clock = FakeClock()
        connection = Connection(
            server="https://s.example",
            token_file="/unused",
            ca_file=None,
            server_ca_pem=None,
            cluster=None,
            timeout=timeout,
        )
        super().__init__(connection, sleep=self.clock.sleep, clock=self.clock)
        self.script = list(script)
        self.attempts = 0
        self.attempt_seconds = attempt_seconds

    def _send(self, method: str, path: str, body: bytes | None, timeout: float) -> Answer:
        self.attempts += 1
        self.clock.now += self.attempt_seconds
        answer = self.script.pop(0) if self.script else None
        if answer is None:
            raise client_module._RetryableError("ConnectionRefusedError: [Errno 111] Connection refused")
        return answer


def problem(status: int, detail: str = "d", retry_after: float | None = None) -> Answer:
    body = f'{{"type": "about:blank", "title": "t", "status": {status}, "detail": "{detail}"}}'.encode()
    return Answer(status, "application/problem+json", retry_after, body)


def test_connection_errors_back_off_exponentially_with_jitter() -> None:
    client = ScriptedClient([None, None, None, None, None, OK])

    assert client.whoami() == {"secrets": []}

    sleeps = client.clock.sleeps
    assert len(sleeps) == 5
    for attempt, slept in enumerate(sleeps):
        ceiling = min(MAX_DELAY, 0.25 * 2**attempt)
        assert ceiling / 2 <= slept <= ceiling


def test_jitter_spreads_the_delays() -> None:
    delays = set()
    for _ in range(10):
        client = ScriptedClient([None, OK])
        client.whoami()
        delays.add(client.clock.sleeps[0])
    assert len(delays) > 1


def test_retrying_stops_at_the_timeout_with_exit_5() -> None:
    client = ScriptedClient([], timeout=30, attempt_seconds=0.01)

    with pytest.raises(UnavailableError, match="Connection refused") as caught:
        client.fetch({"secrets": []})

    assert caught.value.exit_code == 5
    assert 29 <= sum(client.clock.sleeps) + client.attempts * 0.01 <= 30
    assert max(client.clock.sleeps) <= MAX_DELAY


def test_retry_after_sets_the_delay_but_never_shortens_it() -> None:
    client = ScriptedClient([problem(429, retry_after=7), problem(503, retry_after=0), OK])

    client.fetch({"secrets": []})

    first, second = client.clock.sleeps
    assert 7 <= first <= 7.7
    assert 0.25 <= second <= 0.5  # "Retry-After: 0" still backs off: no busy loop


@pytest.mark.parametrize(
    ("status", "error", "exit_code"),
    [(400, UsageError, 2), (401, DeniedError, 3), (403, DeniedError, 3), (404, NotFoundError, 4),
     (413, UsageError, 2), (415, UsageError, 2), (500, CliError, 1)],
)  # fmt: skip
def test_other_statuses_are_final(status: int, error: type[CliError], exit_code: int) -> None:
    client = ScriptedClient([problem(status, "the detail")])

    with pytest.raises(error, match="the detail") as caught:
        client.fetch({"secrets": []})

    assert caught.value.exit_code == exit_code
    assert client.attempts == 1


def test_a_200_that_is_not_a_json_object_is_an_unexpected_answer() -> None:
    client = ScriptedClient([Answer(200, "text/html", None, b"<html>")])

    with pytest.raises(CliError, match="not a JSON object") as caught:
        client.whoami()

    assert caught.value.exit_code == 1


def test_retry_after_may_be_seconds_or_an_http_date() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= (parse_retry_after(in_ten) or 0) <= 10
    assert parse_retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0


def test_the_problem_detail_is_printable_and_bounded() -> None:
    assert problem_detail(problem(403, "not granted: s:k")) == "not granted: s:k"
    assert problem_detail(Answer(502, "text/html", None, b"<h1>Bad gateway</h1>")) == (
        "status 502 without a problem detail"
    )
    long = problem_detail(problem(400, "x\\u001b[31m" + "y" * 1000))
    assert "\x1b" not in long
    assert len(long) == 500
