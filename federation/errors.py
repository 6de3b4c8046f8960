"""The federation server's one exception tree.

Every error a request can meet is a ``FederationError``; ``api.py`` turns it into an
``application/problem+json`` response in a single handler. ``detail`` is always safe to show a
caller: it never holds a token, a secret value, or a credential. Third-party exceptions are
translated into this tree at the boundary that calls them (``raise ... from exc``)::

    FederationError
    ├── BadRequest            400
    ├── Unauthorized          401  one uniform detail; the real reason is logged only
    ├── Forbidden             403
    ├── NotFound              404
    │   └── SecretNotFound        a key or property that a store does not have
    ├── PayloadTooLarge       413
    ├── UnsupportedMediaType  415
    ├── RateLimited           429  Retry-After
    ├── StoreError            502  the store answered with an error
    └── Unavailable           503  Retry-After
        ├── StoreUnavailable      the store cannot be reached, or is sealed
        └── JwksUnavailable       a federation's key set cannot be fetched and no good copy is held
    ConfigurationError            not an HTTP error: a configuration that cannot be loaded
"""

from __future__ import annotations

from collections.abc import Sequence


class FederationError(Exception):
    """Base of every error the server answers with; ``status`` and ``title`` are per class."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"
    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        """Extra response headers, such as ``Retry-After``."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class BadRequest(FederationError):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(FederationError):
    """Any token problem. ``reason`` goes to the log; callers all see the same detail."""

    status, title, slug = 401, "Unauthorized", "unauthorized"
    public_detail = "the bearer token was not accepted"

    def __init__(self, reason: str) -> None:
        super().__init__(self.public_detail)
        self.reason = reason


class Forbidden(FederationError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(FederationError):
    status, title, slug = 404, "Not Found", "not-found"


class SecretNotFound(NotFound):
    """Raised by providers; the service turns it into one 404 naming every missing item."""


class PayloadTooLarge(FederationError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(FederationError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class RateLimited(FederationError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreError(FederationError):
    """The store answered, but with an error (permission denied, malformed data, ...)."""

    status, title, slug = 502, "Bad Gateway", "store-error"


class Unavailable(FederationError):
    status, title, slug = 503, "Service Unavailable", "unavailable"
    retry_after = 5


class StoreUnavailable(Unavailable):
    """The store cannot be reached, timed out, or is sealed; worth retrying later."""


class JwksUnavailable(Unavailable):
    """A federation's JWKS cannot be fetched and no good copy is held."""


class ConfigurationError(Exception):
    """A configuration that cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
