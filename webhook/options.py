"""The webhook's flags, each declared once with its ``ESI_WEBHOOK_*`` variable (see cli/options.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cli.durations import parse_duration
from cli.options import Option, OptionError, add_options
from cli.options import resolve as resolve_options
from webhook.errors import ConfigurationError
from webhook.logs import LOG_LEVELS
from webhook.settings import ALWAYS_EXCLUDED_NAMESPACES, ContainerDefaults, Settings

ENV_PREFIX = "ESI_WEBHOOK_"


def _option(flag: str, help_text: str, **declared: Any) -> Option:
    """A webhook flag; its environment variable is ``ESI_WEBHOOK_`` and the flag's name."""
    return Option(flag, help_text, env=ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper(), **declared)


_DEFAULTS = ContainerDefaults()
SERVER = (
    _option("--bind", "HOST:PORT to listen on", default="0.0.0.0:8443"),
    _option("--tls-cert", "PEM certificate (chain) file, reloaded on change (required)"),
    _option("--tls-key", "PEM private key file, reloaded on change (required)"),
    _option("--workers", "gunicorn worker processes", default="2", parse=int),
    _option("--threads", "threads per worker", default="4", parse=int),
)
INJECTION = (
    _option("--server-url", "federation server URL that esi-cli calls (https://); always allowed"),
    _option(
        "--allowed-server-urls",
        "comma list of further federation URLs a pod may name in its server annotation",
    ),
    _option("--server-ca-file", "PEM file of the CA that signed the federation server's TLS certificate"),
    _option("--cluster-name", "name of this client cluster as the federation server knows it (required)"),
    _option("--audience", "audience of the projected ServiceAccount token", default="esi-federation"),
    _option(
        "--init-image", "image of esi-init and esi-refresh (carries esi-cli)", default=Settings.init_image
    ),
    _option(
        "--token-expiration",
        "expirationSeconds of the projected token (600 or more; a duration)",
        default="600",
        parse=lambda text: int(parse_duration(text)),
    ),
    _option(
        "--excluded-namespaces",
        "comma list of namespaces whose pods pass untouched, besides "
        + ", ".join(sorted(ALWAYS_EXCLUDED_NAMESPACES))
        + " and $POD_NAMESPACE",
    ),
    _option("--init-cpu-request", "CPU request of the injected containers", default=_DEFAULTS.cpu_request),
    _option(
        "--init-memory-request", "memory request of the injected containers", default=_DEFAULTS.memory_request
    ),
    _option("--init-cpu-limit", "CPU limit of the injected containers", default=_DEFAULTS.cpu_limit),
    _option("--init-memory-limit", "memory limit of the injected containers", default=_DEFAULTS.memory_limit),
    _option(
        "--init-run-as-user",
        "runAsUser of the injected containers unless the pod sets a non-root one",
        default=str(_DEFAULTS.run_as_user),
        parse=int,
    ),
    _option(
        "--init-run-as-group",
        "runAsGroup of the injected containers unless the pod sets a non-root one",
        default=str(_DEFAULTS.run_as_group),
        parse=int,
    ),
    _option(
        "--init-image-pull-policy",
        "imagePullPolicy of the injected containers",
        default=_DEFAULTS.image_pull_policy,
        choices=["Always", "IfNotPresent", "Never"],
    ),
    _option(
        "--secrets-size-limit",
        "sizeLimit of the in-memory esi-secrets volume",
        default=Settings.secrets_size_limit,
    ),
    _option(
        "--bin-size-limit",
        "sizeLimit of the esi-bin volume that holds esi-cli in env mode",
        default=Settings.bin_size_limit,
    ),
    _option("--log-level", "log level", default="info", choices=LOG_LEVELS),
)


def add_configuration_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``serve`` and ``mutate``: what the webhook injects."""
    add_options(parser.add_argument_group("injection"), INJECTION)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """``serve``'s own flags: where and how it listens."""
    add_options(parser.add_argument_group("server"), SERVER)


def resolve(
    options: Sequence[Option], args: argparse.Namespace, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Every option's value: the flag, else its ``ESI_WEBHOOK_*`` variable, else its default."""
    try:
        return resolve_options(options, vars(args), environ)
    except OptionError as exc:
        raise ConfigurationError(str(exc)) from None


def _comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _read_server_ca(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--server-ca-file: cannot read {path}: {exc.__class__.__name__}") from exc


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Build and validate Settings from parsed flags; raise ConfigurationError naming a bad flag."""
    return settings_from_values(resolve(INJECTION, args, environ), environ)


def settings_from_values(values: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Settings from the resolved ``INJECTION`` options (``POD_NAMESPACE`` is always excluded)."""
    excluded = set(_comma_list(values["excluded_namespaces"]))
    if environ.get("POD_NAMESPACE"):
        excluded.add(environ["POD_NAMESPACE"])
    containers = ContainerDefaults(
        cpu_request=values["init_cpu_request"],
        memory_request=values["init_memory_request"],
        cpu_limit=values["init_cpu_limit"],
        memory_limit=values["init_memory_limit"],
        run_as_user=values["init_run_as_user"],
        run_as_group=values["init_run_as_group"],
        image_pull_policy=values["init_image_pull_policy"],
    )
    return Settings(
        cluster_name=values["cluster_name"] or "",
        server_url=values["server_url"] or None,
        allowed_server_urls=frozenset(_comma_list(values["allowed_server_urls"])),
        server_ca_pem=_read_server_ca(values["server_ca_file"]),
        audience=values["audience"],
        init_image=values["init_image"],
        token_expiration=values["token_expiration"],
        excluded_namespaces=frozenset(excluded),
        containers=containers,
        secrets_size_limit=values["secrets_size_limit"],
        bin_size_limit=values["bin_size_limit"],
    )


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """Settings from ``ESI_WEBHOOK_*`` variables alone, for ``gunicorn 'webhook.app:create_app()'``."""
    return settings_from_args(argparse.Namespace(), environ)


def log_level_from_environment(environ: Mapping[str, str]) -> str:
    """``ESI_WEBHOOK_LOG_LEVEL``, else the default, for plain gunicorn."""
    return str(resolve(INJECTION, argparse.Namespace(), environ)["log_level"])
