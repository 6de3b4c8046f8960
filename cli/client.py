"""The federation server's HTTP API, over the standard library's ``socket`` and ``ssl`` (``http11``).

One call = attempts until a final answer or until the total ``timeout`` is spent. Connection errors
and 429/502/503/504 are retried with exponential backoff and jitter, honouring ``Retry-After``;
every other status is final. TLS is always verified: with the configured server CA, else the system
trust store. ``ssl`` and the HTTP code are imported only when a request is made, so ``version``,
``--help`` and usage errors never pay for them.
"""

from __future__ import annotations

import json
import os
import time

from cli import __version__, log
from cli.errors import CliError, UnavailableError, UsageError, error_for_status
from cli.serverurl import split_server_url

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from cli.settings import Connection

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
FIRST_DELAY = 0.25
MAX_DELAY = 10.0
# One hung attempt must not eat the whole budget; the store behind the server answers well within this.
MAX_ATTEMPT_SECONDS = 30.0
# Below this much time left another attempt cannot finish.
MIN_ATTEMPT_SECONDS = 0.05
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_DETAIL_CHARS = 500


class Answer:
    """One HTTP answer: status, ``Retry-After`` in seconds (if any) and the body."""

    __slots__ = ("body", "content_type", "retry_after", "status")

    def __init__(self, status: int, content_type: str, retry_after: float | None, body: bytes) -> None:
        self.status = status
        self.content_type = content_type
        self.retry_after = retry_after
        self.body = body


class FederationClient:
    """Calls ``/v1/secrets`` and ``/v1/whoami`` with the pod's token; retries until the deadline."""

    def __init__(
        self,
        connection: Connection,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection = connection
        self._sleep = sleep
        self._clock = clock
        self._context: ssl.SSLContext | None = None

    def fetch(self, body: dict[str, object]) -> dict[str, object]:
        """POST ``body`` to ``/v1/secrets`` and return the decoded answer."""
        return self._call("POST", "/v1/secrets", json.dumps(body).encode())

    def whoami(self) -> dict[str, object]:
        """GET ``/v1/whoami``: the identity the server sees and what it may read."""
        return self._call("GET", "/v1/whoami", None)

    def _call(self, method: str, path: str, body: bytes | None) -> dict[str, object]:
        deadline = self._clock() + self.connection.timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            try:
                answer = self._send(method, path, body, min(remaining, MAX_ATTEMPT_SECONDS))
            except _RetryableError as exc:
                reason, retry_after, status = str(exc), None, None
            else:
                if answer.status == 200:
                    return _decode_success(answer)
                detail = problem_detail(answer)
                if answer.status not in RETRYABLE_STATUSES:
                    raise error_for_status(answer.status, f"HTTP {answer.status}: {detail}")
                reason, retry_after, status = (
                    f"HTTP {answer.status}: {detail}",
                    answer.retry_after,
                    answer.status,
                )
            delay = self._delay(attempt, retry_after, deadline)
            if delay is None:
                raise UnavailableError(
                    f"{self.connection.server} gave no answer within --timeout "
                    f"{self.connection.timeout:g}s ({attempt} attempts); last: {reason}"
                )
            log.warning(
                "retry",
                f"{method} {path} failed, retrying in {delay:.2f}s",
                attempt=attempt,
                status=status,
                reason=reason,
                delay_s=round(delay, 3),
            )
            self._sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when the deadline does not allow one."""
        remaining = deadline - self._clock()
        ceiling = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1))
        backoff = ceiling * (0.5 + 0.5 * _jitter())
        if retry_after is not None:
            # Never earlier than the server asked, spread a little so that pods do not return in step,
            # and never below the backoff (a "Retry-After: 0" must not turn into a busy loop).
            delay = max(retry_after * (1 + 0.1 * _jitter()), backoff)
            return delay if delay + MIN_ATTEMPT_SECONDS < remaining else None
        delay = min(backoff, remaining - MIN_ATTEMPT_SECONDS)
        return delay if delay > 0 else None

    def _send(self, method: str, path: str, body: bytes | None, timeout: float) -> Answer:
        import ssl  # noqa: PLC0415 - deferred: only needed once a request is made

        from cli import http11  # noqa: PLC0415

        base = self.connection.server
        server = split_server_url(base)
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Accept": "application/json, application/problem+json",
            "User-Agent": f"esi-cli/{__version__}",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = http11.build_request(method, server.netloc, server.path + path, headers, body)
        try:
            response = http11.exchange(
                server.host,
                server.port,
                request,
                timeout=timeout,
                context=self._tls_context(),
                max_body=MAX_RESPONSE_BYTES,
            )
        except ssl.SSLCertVerificationError as exc:
            raise UsageError(
                f"the TLS certificate of {base} is not trusted ({exc.verify_message}); "
                "check --server-ca-file / ESI_SERVER_CA_FILE / ESI_SERVER_CA"
            ) from None
        except http11.TooLargeError as exc:
            raise CliError(f"{base}: {exc}") from None
        except (OSError, http11.ProtocolError) as exc:
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from None
        return Answer(
            response.status,
            response.headers.get("content-type", ""),
            parse_retry_after(response.headers.get("retry-after")),
            response.body,
        )

    def _token(self) -> str:
        # Read on every attempt: the kubelet rotates the projected token file in place.
        try:
            with open(self.connection.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read token file {self.connection.token_file}: {exc}") from None
        if not token:
            raise UsageError(f"token file {self.connection.token_file} is empty")
        if not token.isascii() or not token.isprintable() or " " in token:
            # A JWT is one printable ASCII word; anything else would break (or inject into) the header.
            raise UsageError(f"token file {self.connection.token_file} does not hold a single bearer token")
        return token

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            import ssl  # noqa: PLC0415

            from cli.truststore import system_context  # noqa: PLC0415

            try:
                if self.connection.server_ca_pem is None:
                    context = system_context()
                else:
                    context = ssl.create_default_context(cadata=self.connection.server_ca_pem)
            except ssl.SSLError as exc:
                raise UsageError(f"the server CA is not a valid PEM certificate: {exc}") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context = context
        return self._context


class _RetryableError(Exception):
    """A failed attempt that a later attempt may get past (connection refused, reset, timed out)."""


def problem_detail(answer: Answer) -> str:
    """The server's ``detail`` (else ``title``) of a problem+json answer, else the bare status."""
    text = ""
    if "json" in answer.content_type:
        try:
            problem = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            problem = None
        if isinstance(problem, dict):
            found = problem.get("detail") or problem.get("title")
            text = found if isinstance(found, str) else ""
    if not text:
        return f"status {answer.status} without a problem detail"
    printable = "".join(char if char.isprintable() else " " for char in text)
    return printable[:MAX_DETAIL_CHARS]


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` when absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    # Rare (servers send seconds), so the date parser loads only for it.
    from email.utils import parsedate_to_datetime  # noqa: PLC0415

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _decode_success(answer: Answer) -> dict[str, object]:
    try:
        decoded = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        decoded = None
    if not isinstance(decoded, dict):
        raise CliError("the server answered 200 with something that is not a JSON object")
    return decoded


def _jitter() -> float:
    """A uniform number in [0, 1); from ``os.urandom`` because ``random`` is not otherwise needed."""
    return int.from_bytes(os.urandom(4), "big") / 2**32
