"""``esi-federation``: ``serve`` the federation API through gunicorn, or ``check`` a configuration."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from federation import register_command
from federation.errors import ConfigurationError
from federation.options import add_serve_options, settings_from
from federation.settings import Settings

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag says what it does and its default."""
    parser = argparse.ArgumentParser(
        prog="esi-federation",
        description="Federation server: verifies client clusters' ServiceAccount tokens and serves them "
        "the ClusterSecretStore secrets their Authorizations grant.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API over TLS with gunicorn")
    add_serve_options(serve)
    check = commands.add_parser("check", help="validate a manifests directory offline; exit 1 on problems")
    check.add_argument(
        "--manifests", type=Path, required=True, metavar="DIR", help="directory of *.yaml/*.yml"
    )
    register_command.add_subcommand(commands)
    return parser


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from parsed ``serve`` flags, else their ``ESI_FEDERATION_*`` variables, else defaults."""
    return settings_from(vars(args), environ)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``esi-federation`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return run_check(args.manifests)
    if args.command == "register":
        return register_command.run(args)
    try:
        settings = settings_from_args(args, os.environ)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"esi-federation: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return run_serve(settings)


def run_check(directory: Path) -> int:
    """Print every problem (and deprecation warning) of ``directory``; 0 when there are no problems."""
    from federation.config.check import find_problems  # noqa: PLC0415 - keeps --help fast
    from federation.config.manifests import load_directory  # noqa: PLC0415
    from federation.stores.registry import store_problem  # noqa: PLC0415

    try:
        config = load_directory(directory)
    except ConfigurationError as exc:
        problems = exc.problems
    else:
        problems = find_problems(config, functools.partial(store_problem, settings=Settings()))
        for warning in config.deprecated:
            print(f"warning: {warning}")
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        print(
            f"ok: {len(config.federations)} federations, {len(config.grants)} authorizations, "
            f"{len(config.stores)} stores, {len(config.secrets)} secrets"
        )
    return EXIT_PROBLEMS if problems else EXIT_OK


def run_serve(settings: Settings) -> int:
    """Validate, then hand over to gunicorn (which returns only when it stops)."""
    # Before anything imports prometheus_client: it picks its value storage at import time. Workers then
    # share metrics through files, and /metrics shows every worker's counters.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="esi-federation-metrics-"))
    from federation.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level)
    problems = settings.validate()
    if settings.manifests_dir is not None and not problems:
        from federation.config.manifests import load_directory  # noqa: PLC0415

        try:
            load_directory(settings.manifests_dir)
        except ConfigurationError as exc:
            problems = exc.problems
    if settings.kubernetes and not problems:
        from federation.kube.api import KubeApi, KubeApiError  # noqa: PLC0415

        try:
            KubeApi.connect(settings.kubeconfig)  # a kubeconfig (or in-cluster setup) that cannot load
        except KubeApiError as exc:
            problems = [str(exc)]
    if problems:
        for problem in problems:
            print(f"esi-federation: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from federation.server import GunicornServer  # noqa: PLC0415 - gunicorn only when serving

    # One directory shared by the workers: a JWKS fetched by one worker serves all of them.
    shared = Path(tempfile.mkdtemp(prefix="esi-federation-state-"))
    GunicornServer(dataclasses.replace(settings, shared_state_dir=shared)).run()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
