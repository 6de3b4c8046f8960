"""The webhook's one exception tree, and where each branch ends up.

::

    WebhookError
    ├── ConfigurationError       bad flags or files                   -> exit 2
    ├── BadReview                not an AdmissionReview we can read   -> HTTP 400 (mutate: exit 2)
    │   └── PayloadTooLarge      body over the size cap               -> HTTP 413
    └── PodRejected              a readable review of a pod we refuse -> HTTP 200, ``allowed: false``
                                                                          (mutate: exit 1)

Two channels, on purpose: the API server retries and alerts on HTTP errors, while a refused pod is an
answer about the pod and reaches the user who applied it. Every message is safe to show and to log: it
names annotations, containers and volumes, never a secret value or a token.
"""

from __future__ import annotations


class WebhookError(Exception):
    """Base of every error the webhook raises on purpose; ``str(exc)`` is safe to show."""

    status = 500
    exit_code = 1


class ConfigurationError(WebhookError):
    """A flag, environment variable or file given at start-up is unusable."""

    exit_code = 2


class BadReview(WebhookError):
    """The request body is not an AdmissionReview ``admission.k8s.io/v1`` holding a readable pod."""

    status = 400
    exit_code = 2


class PayloadTooLarge(BadReview):
    """The request body is larger than the webhook accepts."""

    status = 413


class PodRejected(WebhookError):
    """The pod cannot be mutated as annotated; the message says why and names what to fix."""

    status = 200
