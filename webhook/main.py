"""``esi-webhook``: ``serve`` (gunicorn over TLS) and ``mutate`` (the same admission code, offline).

Exit codes: 0 ok, 1 the pod was rejected (``mutate``), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from webhook import logs
from webhook.errors import ConfigurationError, WebhookError
from webhook.offline import OUTPUTS, mutate_document, render
from webhook.options import (
    INJECTION,
    SERVER,
    add_configuration_flags,
    add_server_flags,
    resolve,
    settings_from_values,
)

log = logging.getLogger("webhook.main")


def build_parser() -> argparse.ArgumentParser:
    """The ``esi-webhook`` command line; every flag also reads its ``ESI_WEBHOOK_*`` variable."""
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
    add_server_flags(serve)
    add_configuration_flags(serve)
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
    add_configuration_flags(mutate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``esi-webhook``; return the exit code."""
    environ = os.environ
    args = build_parser().parse_args(argv)
    try:
        values = resolve(INJECTION, args, environ)
    except ConfigurationError as exc:
        print(f"esi-webhook: {exc}", file=sys.stderr)
        return exc.exit_code
    logs.configure(values["log_level"])
    try:
        settings = settings_from_values(values, environ)
        if args.command == "serve":
            return _serve(resolve(SERVER, args, environ), settings, values["log_level"])
        return _mutate(args, settings)
    except WebhookError as exc:
        log.error("%s", exc, extra={"fields": {"event": "exit", "exit_code": exc.exit_code}})
        return exc.exit_code


def _serve(server: dict[str, Any], settings: Any, log_level: str) -> int:
    from webhook.server import gunicorn_options, serve  # noqa: PLC0415  # gunicorn only when serving

    if not server["tls_cert"] or not server["tls_key"]:
        raise ConfigurationError("--tls-cert and --tls-key are required: the API server only calls https")
    if server["workers"] < 1 or server["threads"] < 1:
        raise ConfigurationError("--workers and --threads must be 1 or more")
    options = gunicorn_options(
        bind=server["bind"],
        cert_file=server["tls_cert"],
        key_file=server["tls_key"],
        workers=server["workers"],
        threads=server["threads"],
        log_level=log_level,
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
