"""``esi-federation serve``'s options, each declared once: flag, ``ESI_FEDERATION_*`` variable, help, default.

The same declarations build the command line (``federation.main``) and the settings of plain gunicorn
(``gunicorn 'federation.app:create_app()'``, environment only), through the mechanism all three
programs share (``cli.options``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli.durations import parse_duration
from cli.options import SWITCH, Option, OptionError, add_options, resolve
from federation.errors import ConfigurationError
from federation.settings import Settings

ENV_PREFIX = "ESI_FEDERATION_"
LOG_LEVELS = ("debug", "info", "warning", "error")


def _option(flag: str, help_text: str, **declared: Any) -> Option:
    """A server flag; its environment variable is ``ESI_FEDERATION_`` and the flag's name."""
    return Option(flag, help_text, env=ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper(), **declared)


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _positive_number(text: str) -> float:
    # The duration grammar's numbers: digits and an optional fraction; no sign, exponent, nan or inf.
    whole, dot, fraction = text.strip().partition(".")
    digits = whole.isascii() and whole.isdigit() and (not dot or (fraction.isascii() and fraction.isdigit()))
    if not digits or float(text) <= 0:
        raise ValueError(f"{text!r} is not a positive number")
    return float(text)


def _count(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _namespaces(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise ValueError(f"{text!r} names no namespace")
    return names


SOURCE = (
    _option(
        "--manifests",
        "local mode: read *.yaml/*.yml in DIR, reloading on change",
        metavar="DIR",
        parse=Path,
        dest="manifests_dir",
    ),
    _option("--kubernetes", "Kubernetes mode: list and watch the resources", kind=SWITCH),
)
SERVE = (
    _option(
        "--kubeconfig", "kubeconfig for --kubernetes (default: in-cluster config)", metavar="PATH", parse=Path
    ),
    _option(
        "--federation-secret-namespaces",
        "--kubernetes: namespaces (comma-separated, or *) whose Secrets a KubernetesFederation may name "
        "in tokenSecretRef (default: the server's own namespace)",
        metavar="NS[,NS...]",
        parse=_namespaces,
    ),
    _option(
        "--lease-namespace",
        "--kubernetes: namespace of the Lease that elects the status writer "
        "(default: $POD_NAMESPACE, else the in-cluster namespace)",
        metavar="NAMESPACE",
    ),
    _option(
        "--state-dir",
        "where the records of revocable generated credentials (Vault leases) are kept, so that a "
        "restarted server still renews and revokes them; without it, VaultDynamicSecret is refused",
        metavar="DIR",
        parse=Path,
    ),
    _option(
        "--pod-check-interval",
        "how often the pods holding generated credentials are looked up on their clusters; a "
        "credential of a deleted pod is revoked within this time (at most 60s)",
        default=_seconds(Settings.pod_check_interval),
        metavar="DURATION",
        parse=parse_duration,
    ),
    _option(
        "--token-review-cache-ttl",
        "how long a positive TokenReview answer is reused for the same token",
        default=_seconds(Settings.token_review_cache_ttl),
        metavar="DURATION",
        parse=parse_duration,
    ),
    _option("--bind", "listen address", default=Settings.bind, metavar="HOST:PORT"),
    _option("--tls-cert", "PEM certificate chain of the server", metavar="PATH", parse=Path),
    _option("--tls-key", "PEM private key of the server", metavar="PATH", parse=Path),
    _option("--insecure-http", "serve plain HTTP (tests only; never in production)", kind=SWITCH),
    _option(
        "--audience",
        "audience tokens must carry, unless a federation sets spec.audiences",
        default=Settings.audience,
    ),
    _option("--allow-extra-audiences", "accept tokens whose aud also holds other audiences", kind=SWITCH),
    _option(
        "--max-token-lifetime",
        "longest exp - iat accepted (90, 90s, 5m, 1h)",
        default=_seconds(Settings.max_token_lifetime),
        metavar="DURATION",
        parse=parse_duration,
    ),
    _option(
        "--rate-limit",
        "requests/s per (cluster, subject), shared among the workers; bursts of twice that",
        default=f"{Settings.rate_limit:g}",
        metavar="PER_SECOND",
        parse=_positive_number,
    ),
    _option(
        "--store-cache-ttl",
        "serve a store's answer for this long after its read started, to every worker; 0 turns "
        "caching off (identical reads in flight are merged anyway)",
        default=_seconds(Settings.store_cache_ttl),
        metavar="DURATION",
        parse=parse_duration,
    ),
    _option(
        "--reload-interval",
        "how often --manifests DIR is checked for changes",
        default=_seconds(Settings.reload_interval),
        metavar="DURATION",
        parse=parse_duration,
    ),
    _option("--workers", "gunicorn worker processes", default=str(Settings.workers), parse=_count),
    _option("--threads", "threads per worker", default=str(Settings.threads), parse=_count),
    _option("--log-level", "log level", default=Settings.log_level, choices=LOG_LEVELS),
)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``serve``'s flags: exactly one source (checked with the settings, as it may come from the
    environment), then the rest."""
    add_options(parser.add_mutually_exclusive_group(), SOURCE)
    add_options(parser, SERVE)


def settings_from(given: Mapping[str, object], environ: Mapping[str, str]) -> Settings:
    """Settings from flags (``given``, as argparse parsed them), else ``ESI_FEDERATION_*``, else defaults;
    ``ConfigurationError`` names the flag or variable whose value cannot be used."""
    try:
        values = resolve(SOURCE + SERVE, given, environ)
    except OptionError as exc:
        raise ConfigurationError([str(exc)]) from None
    return Settings(**values)  # type: ignore[arg-type]
