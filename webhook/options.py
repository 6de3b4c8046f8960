"""Command-line flags (each with an ``ESI_WEBHOOK_*`` environment default) -> Settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from cli.durations import parse_duration
from webhook.errors import ConfigurationError
from webhook.logs import LOG_LEVELS
from webhook.settings import ALWAYS_EXCLUDED_NAMESPACES, ContainerDefaults, Settings

ENV_PREFIX = "ESI_WEBHOOK_"


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class _Flags:
    """Adds flags whose default comes from the environment, and says so in ``--help``."""

    def __init__(self, parser: argparse._ActionsContainer, environ: Mapping[str, str]) -> None:
        self.parser = parser
        self.environ = environ

    def add(
        self, flag: str, help_text: str, default: str | None = None, choices: Sequence[str] | None = None
    ) -> None:
        env_name = _env_name(flag)
        value = self.environ.get(env_name, default)
        if choices is not None and value not in choices:
            # argparse checks choices on the command line only, never on a default.
            raise ConfigurationError(f"{env_name}={value!r}: choose one of {', '.join(choices)}")
        shown = f" (default: {default})" if default else ""
        self.parser.add_argument(
            flag, default=value, choices=choices, help=f"{help_text}{shown} [env {env_name}]"
        )


def add_configuration_flags(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Flags shared by ``serve`` and ``mutate``: what the webhook injects."""
    defaults = ContainerDefaults()
    group = parser.add_argument_group("injection")
    flags = _Flags(group, environ)
    flags.add("--server-url", "federation server URL that esi-cli calls (https://); always allowed")
    flags.add(
        "--allowed-server-urls",
        "comma list of further federation URLs a pod may name in its server annotation",
        default="",
    )
    flags.add("--server-ca-file", "PEM file of the CA that signed the federation server's TLS certificate")
    flags.add("--cluster-name", "name of this client cluster as the federation server knows it (required)")
    flags.add("--audience", "audience of the projected ServiceAccount token", default="esi-federation")
    flags.add(
        "--init-image", "image of esi-init and esi-refresh (carries esi-cli)", default=Settings.init_image
    )
    flags.add("--token-expiration", "expirationSeconds of the projected token (600 or more)", default="600")
    flags.add(
        "--excluded-namespaces",
        "comma list of namespaces whose pods pass untouched, besides "
        + ", ".join(sorted(ALWAYS_EXCLUDED_NAMESPACES))
        + " and $POD_NAMESPACE",
        default="",
    )
    flags.add("--init-cpu-request", "CPU request of the injected containers", default=defaults.cpu_request)
    flags.add(
        "--init-memory-request", "memory request of the injected containers", default=defaults.memory_request
    )
    flags.add("--init-cpu-limit", "CPU limit of the injected containers", default=defaults.cpu_limit)
    flags.add("--init-memory-limit", "memory limit of the injected containers", default=defaults.memory_limit)
    flags.add(
        "--init-run-as-user",
        "runAsUser of the injected containers unless the pod sets a non-root one",
        default=str(defaults.run_as_user),
    )
    flags.add(
        "--init-run-as-group",
        "runAsGroup of the injected containers unless the pod sets a non-root one",
        default=str(defaults.run_as_group),
    )
    flags.add(
        "--init-image-pull-policy",
        "imagePullPolicy of the injected containers",
        default=defaults.image_pull_policy,
        choices=["Always", "IfNotPresent", "Never"],
    )
    flags.add(
        "--secrets-size-limit",
        "sizeLimit of the in-memory esi-secrets volume",
        default=Settings.secrets_size_limit,
    )
    flags.add(
        "--bin-size-limit",
        "sizeLimit of the esi-bin volume that holds esi-cli in env mode",
        default=Settings.bin_size_limit,
    )
    flags.add("--log-level", "log level", default="info", choices=LOG_LEVELS)


def _comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _integer(flag: str, text: str, *, duration: bool = False) -> int:
    try:
        return int(parse_duration(text)) if duration else int(text)
    except ValueError as exc:
        raise ConfigurationError(f"{flag}: {text!r} is not a {'duration' if duration else 'number'}") from exc


def _read_server_ca(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--server-ca-file: cannot read {path}: {exc.__class__.__name__}") from exc


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Build and validate Settings from parsed flags; raise ConfigurationError naming a bad flag."""
    excluded = set(_comma_list(args.excluded_namespaces))
    if environ.get("POD_NAMESPACE"):
        excluded.add(environ["POD_NAMESPACE"])
    containers = ContainerDefaults(
        cpu_request=args.init_cpu_request,
        memory_request=args.init_memory_request,
        cpu_limit=args.init_cpu_limit,
        memory_limit=args.init_memory_limit,
        run_as_user=_integer("--init-run-as-user", args.init_run_as_user),
        run_as_group=_integer("--init-run-as-group", args.init_run_as_group),
        image_pull_policy=args.init_image_pull_policy,
    )
    return Settings(
        cluster_name=args.cluster_name or "",
        server_url=args.server_url or None,
        allowed_server_urls=frozenset(_comma_list(args.allowed_server_urls)),
        server_ca_pem=_read_server_ca(args.server_ca_file),
        audience=args.audience,
        init_image=args.init_image,
        token_expiration=_integer("--token-expiration", args.token_expiration, duration=True),
        excluded_namespaces=frozenset(excluded),
        containers=containers,
        secrets_size_limit=args.secrets_size_limit,
        bin_size_limit=args.bin_size_limit,
    )


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """Settings from ``ESI_WEBHOOK_*`` variables alone, for ``gunicorn 'webhook.app:create_app()'``."""
    parser = argparse.ArgumentParser(add_help=False)
    add_configuration_flags(parser, environ)
    args, _ = parser.parse_known_args([])
    return settings_from_args(args, environ)
