"""``esi-federation``: ``serve`` the federation API through gunicorn, or ``check`` a configuration."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from federation import register_command
from federation.errors import ConfigurationError
from federation.settings import Settings, parse_duration

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag says what it does and its default."""
    parser = argparse.ArgumentParser(
        prog="esi-federation",
        description="Federation server: verifies client clusters' ServiceAccount tokens and serves them "
        "the ClusterSecretStore secrets their Authorizations grant.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API over TLS with gunicorn")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="local mode: read *.yaml/*.yml in DIR, reloading on change",
    )
    source.add_argument(
        "--kubernetes", action="store_true", help="Kubernetes mode: list and watch the resources"
    )
    serve.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig for --kubernetes (default: in-cluster config)"
    )
    serve.add_argument(
        "--lease-namespace",
        metavar="NAMESPACE",
        help="--kubernetes: namespace of the Lease that elects the status writer "
        "(default: $POD_NAMESPACE, else the in-cluster namespace)",
    )
    serve.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the records of revocable generated credentials (Vault leases) are kept, so that a "
        "restarted server still renews and revokes them; without it, VaultDynamicSecret is refused",
    )
    serve.add_argument(
        "--pod-check-interval",
        type=_duration,
        default=Settings.pod_check_interval,
        metavar="DURATION",
        help="how often the pods holding generated credentials are looked up on their clusters; a "
        "credential of a deleted pod is revoked within this time (at most 60s; default: %(default)s)",
    )
    serve.add_argument(
        "--token-review-cache-ttl",
        type=_duration,
        default=Settings.token_review_cache_ttl,
        metavar="DURATION",
        help="how long a positive TokenReview answer is reused for the same token (default: %(default)s)",
    )
    serve.add_argument(
        "--bind", default=Settings.bind, metavar="HOST:PORT", help="listen address (default: %(default)s)"
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain of the server")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of the server")
    serve.add_argument(
        "--insecure-http", action="store_true", help="serve plain HTTP (tests only; never in production)"
    )
    serve.add_argument(
        "--audience",
        default=Settings.audience,
        help="audience tokens must carry, unless a federation sets spec.audiences (default: %(default)s)",
    )
    serve.add_argument(
        "--allow-extra-audiences",
        action="store_true",
        help="accept tokens whose aud also holds other audiences",
    )
    serve.add_argument(
        "--max-token-lifetime",
        type=_duration,
        default=Settings.max_token_lifetime,
        metavar="DURATION",
        help="longest exp - iat accepted (90, 90s, 5m, 1h) (default: %(default)s)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=Settings.rate_limit,
        metavar="PER_SECOND",
        help="requests/s per (cluster, subject), shared among the workers; bursts of twice that "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--store-cache-ttl",
        type=_duration,
        default=Settings.store_cache_ttl,
        metavar="DURATION",
        help="serve a store's answer for this long after its read started, to every worker; 0 turns "
        "caching off (identical reads in flight are merged anyway) (default: %(default)gs)",
    )
    serve.add_argument(
        "--reload-interval",
        type=_duration,
        default=Settings.reload_interval,
        metavar="DURATION",
        help="how often --manifests DIR is checked for changes (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=Settings.workers,
        help="gunicorn worker processes (default: %(default)s)",
    )
    serve.add_argument(
        "--threads", type=int, default=Settings.threads, help="threads per worker (default: %(default)s)"
    )
    serve.add_argument(
        "--log-level",
        default=Settings.log_level,
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    check = commands.add_parser("check", help="validate a manifests directory offline; exit 1 on problems")
    check.add_argument(
        "--manifests", type=Path, required=True, metavar="DIR", help="directory of *.yaml/*.yml"
    )
    register_command.add_subcommand(commands)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed ``serve`` flags."""
    return Settings(
        manifests_dir=args.manifests,
        kubernetes=args.kubernetes,
        kubeconfig=args.kubeconfig,
        lease_namespace=args.lease_namespace,
        token_review_cache_ttl=args.token_review_cache_ttl,
        state_dir=args.state_dir,
        pod_check_interval=args.pod_check_interval,
        audience=args.audience,
        allow_extra_audiences=args.allow_extra_audiences,
        max_token_lifetime=args.max_token_lifetime,
        rate_limit=args.rate_limit,
        store_cache_ttl=args.store_cache_ttl,
        reload_interval=args.reload_interval,
        bind=args.bind,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure_http=args.insecure_http,
        workers=args.workers,
        threads=args.threads,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``esi-federation`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return run_check(args.manifests)
    if args.command == "register":
        return register_command.run(args)
    return run_serve(settings_from_args(args))


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
