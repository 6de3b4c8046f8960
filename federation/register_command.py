"""The ``register`` subcommand's flags and its exit codes; the work is in ``federation.register``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from federation.errors import ConfigurationError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def add_subcommand(commands: Any) -> None:
    """Add ``register`` to the subparsers ``commands`` of ``esi-federation``."""
    register = commands.add_parser(
        "register",
        help="print the KubernetesFederation (and an Authorization) of a client cluster, after checking "
        "that the federation server will be able to fetch its keys",
        description="Reads a client cluster's API server URL and CA from a kubeconfig and its issuer from "
        "/.well-known/openid-configuration, fetches /openid/v1/jwks anonymously as the federation server "
        "will, and prints the manifests to apply on cluster-main. Exit 1 (nothing printed) when the keys "
        "cannot be fetched; the message names what the client cluster lacks.",
    )
    register.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig of the client cluster (default: $KUBECONFIG, else ~/.kube/config, as kubectl)",
    )
    register.add_argument("--context", help="context of the kubeconfig (default: its current-context)")
    register.add_argument(
        "--name",
        required=True,
        help="name of the KubernetesFederation (the webhook's federation.clusterName)",
    )
    register.add_argument(
        "--url",
        metavar="URL",
        help="spec.url: the API server as cluster-main reaches it (default: the kubeconfig's server)",
    )
    register.add_argument(
        "--audience",
        action="append",
        default=[],
        metavar="AUDIENCE",
        help="spec.audiences (repeatable; default: none, so the server's --audience applies)",
    )
    register.add_argument(
        "--subject",
        metavar="system:serviceaccount:NS:NAME",
        help="also print an Authorization for this ServiceAccount",
    )
    register.add_argument(
        "--store", action="append", default=[], help="a ClusterSecretStore --subject may read (repeatable)"
    )
    register.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="GLOB",
        help="limit --subject to these keys (repeatable; default: every key of the stores)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the manifests on stdout and what was found on stderr; 0 only when they will work."""
    from federation.register import Request, register  # noqa: PLC0415 - keeps --help fast

    request = Request(
        name=args.name,
        url=args.url,
        audiences=tuple(args.audience),
        subject=args.subject,
        stores=tuple(args.store),
        secrets=tuple(args.secret),
    )
    try:
        manifests, findings = register(args.kubeconfig, args.context, request)
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"esi-federation: {problem}", file=sys.stderr)
        return EXIT_USAGE
    for problem in findings.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if manifests is None:
        return EXIT_PROBLEMS
    print(
        f"ok: issuer {findings.issuer}, JWKS of {findings.keys} key(s) fetched anonymously"
        + (f" (discovery's jwks_uri: {findings.jwks_uri})" if findings.jwks_uri else ""),
        file=sys.stderr,
    )
    sys.stdout.write(manifests)
    return EXIT_OK
