"""``esi-webhook``: ``serve`` (gunicorn over TLS) and ``mutate`` (the same admission code, offline).

Exit codes: 0 ok, 1 the pod was rejected (``mutate``), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from webhook import logs
from webhook.errors import ConfigurationError, WebhookError
from webhook.offline import OUTPUTS, mutate_document, render
from webhook.options import ENV_PREFIX, add_configuration_flags, settings_from_args

log = logging.getLogger("webhook.main")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The ``esi-webhook`` command line; every configuration flag also reads ``ESI_WEBHOOK_*``."""
    parser = argparse.ArgumentParser(
        prog="esi-webhook",
        description="Mutating admission webhook that injects esi-init into annotated pods.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve /mutate, /healthz, /readyz and /metrics over TLS",
        description="Serve AdmissionReviews over TLS with gunicorn; TLS files are reloaded when they change.",
    )
    server = serve.add_argument_group("server")
    server.add_argument(
        "--bind",
        default=environ.get(ENV_PREFIX + "BIND", "0.0.0.0:8443"),
        help="HOST:PORT to listen on (default: 0.0.0.0:8443) [env ESI_WEBHOOK_BIND]",
    )
    server.add_argument(
        "--tls-cert",
        default=environ.get(ENV_PREFIX + "TLS_CERT"),
        help="PEM certificate (chain) file, reloaded on change (required) [env ESI_WEBHOOK_TLS_CERT]",
    )
    server.add_argument(
        "--tls-key",
        default=environ.get(ENV_PREFIX + "TLS_KEY"),
        help="PEM private key file, reloaded on change (required) [env ESI_WEBHOOK_TLS_KEY]",
    )
    server.add_argument(
        "--workers",
        type=int,
        default=environ.get(ENV_PREFIX + "WORKERS", "2"),
        help="gunicorn worker processes (default: 2) [env ESI_WEBHOOK_WORKERS]",
    )
    server.add_argument(
        "--threads",
        type=int,
        default=environ.get(ENV_PREFIX + "THREADS", "4"),
        help="threads per worker (default: 4) [env ESI_WEBHOOK_THREADS]",
    )
    add_configuration_flags(serve, environ)
    mutate = commands.add_parser(
        "mutate",
        help="print a pod as the webhook would mutate it, offline",
        description="Mutate a pod manifest offline with the code /mutate runs (like istioctl kube-inject).",
    )
    mutate.add_argument("-f", "--filename", required=True, help="pod manifest (YAML or JSON); - for stdin")
    mutate.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="yaml",
        help="the mutated pod as yaml or json, or the JSON patch",
    )
    mutate.add_argument(
        "-n", "--namespace", help="namespace to admit the pod in (default: the manifest's, else default)"
    )
    add_configuration_flags(mutate, environ)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``esi-webhook``; return the exit code."""
    environ = os.environ
    try:
        parser = build_parser(environ)
    except ConfigurationError as exc:
        print(f"esi-webhook: {exc}", file=sys.stderr)
        return exc.exit_code
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    try:
        settings = settings_from_args(args, environ)
        if args.command == "serve":
            return _serve(args, settings)
        return _mutate(args, settings)
    except WebhookError as exc:
        log.error("%s", exc, extra={"fields": {"event": "exit", "exit_code": exc.exit_code}})
        return exc.exit_code


def _serve(args: argparse.Namespace, settings: Any) -> int:
    from webhook.server import gunicorn_options, serve  # noqa: PLC0415  # gunicorn only when serving

    if not args.tls_cert or not args.tls_key:
        raise ConfigurationError("--tls-cert and --tls-key are required: the API server only calls https")
    if args.workers < 1 or args.threads < 1:
        raise ConfigurationError("--workers and --threads must be 1 or more")
    options = gunicorn_options(
        bind=args.bind,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        workers=args.workers,
        threads=args.threads,
        log_level=args.log_level,
    )
    serve(settings, options)
    return 0


def _mutate(args: argparse.Namespace, settings: Any) -> int:
    text = _read_manifest(args.filename)
    result = mutate_document(text, settings, namespace=args.namespace)
    if result.refusal is not None:
        print(f"esi-webhook: pod rejected: {result.refusal}", file=sys.stderr)
        return 1
    sys.stdout.write(render(result, args.output))
    return 0


def _read_manifest(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    try:
        return Path(filename).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {filename}: {exc.__class__.__name__}") from exc


if __name__ == "__main__":
    sys.exit(main())
