"""esi-cli's options, each declared once: its flag, its ``ESI_*`` variable, its help and its default."""

from __future__ import annotations

from cli import environment as env
from cli.options import REPEATED, Option

DEFAULT_TOKEN_FILE = "/var/run/secrets/esi/token"  # noqa: S105 - a path, not a secret
DEFAULT_CA_FILE = "/var/run/secrets/esi/ca.crt"
DEFAULT_DIR = "/etc/secrets"
DEFAULT_FILE_MODE = "0440"
DEFAULT_TIMEOUT = "120s"


def _reference_lines(text: str) -> list[str]:
    # The reference module loads only when a variable is read: --help and version need none of it.
    from cli.refs import split_lines  # noqa: PLC0415

    return split_lines(text)


CONNECTION = (
    Option("--server", "federation server, https:// only (required)", env=env.SERVER, metavar="URL"),
    Option(
        "--token-file",
        "ServiceAccount token sent as Bearer",
        env=env.TOKEN_FILE,
        default=DEFAULT_TOKEN_FILE,
        metavar="PATH",
    ),
    Option(
        "--ca-file",
        f"client cluster CA certificate sent as caCert (default: {DEFAULT_CA_FILE} if present)",
        env=env.CA_FILE,
        metavar="PATH",
    ),
    Option(
        "--server-ca-file",
        f"CA that verifies the server's TLS certificate; {env.SERVER_CA} may hold the PEM itself "
        "(default: the system trust store)",
        env=env.SERVER_CA_FILE,
        metavar="PATH",
    ),
    Option("--cluster", "this cluster's name, a hint for the server", env=env.CLUSTER, metavar="NAME"),
    Option(
        "--timeout",
        "total time for the request, retries included: 90, 90s, 5m, 1h",
        env=env.TIMEOUT,
        default=DEFAULT_TIMEOUT,
        metavar="DURATION",
    ),
)
SECRETS = (
    Option("--store", "default store for references without one", env=env.STORE, metavar="STORE"),
    Option(
        "--env",
        "env var NAME of the exec'd command gets REF; repeatable (the variable: one per line)",
        env=env.ENV,
        metavar="NAME=REF",
        kind=REPEATED,
        split=_reference_lines,
    ),
    Option(
        "--file",
        "file PATH gets REF, relative PATH is under --dir; repeatable (the variable: one per line)",
        env=env.FILES,
        metavar="PATH=REF",
        kind=REPEATED,
        split=_reference_lines,
    ),
    Option("--dir", "directory for relative file paths", env=env.DIR, default=DEFAULT_DIR, metavar="DIR"),
    Option(
        "--file-mode",
        "octal mode of written files",
        env=env.FILE_MODE,
        default=DEFAULT_FILE_MODE,
        metavar="MODE",
    ),
    Option(
        "--refresh-interval",
        "fetch: keep running and rewrite files that changed every DURATION (default: off)",
        env=env.REFRESH_INTERVAL,
        metavar="DURATION",
    ),
)
INSTALL = (
    Option(
        "--bin-dir",
        "env mode: also copy this self-contained esi-cli into DIR, for the wrapped application "
        "(default: off)",
        env=env.BIN_DIR,
        metavar="DIR",
    ),
)
ALL = CONNECTION + SECRETS + INSTALL
BY_DEST = {option.dest: option for option in ALL}
# The options each command takes, in the order --help lists them.
COMMANDS: dict[str, tuple[tuple[Option, ...], ...]] = {
    "fetch": (CONNECTION, SECRETS, INSTALL),
    "exec": (CONNECTION, SECRETS),
    "whoami": (CONNECTION,),
    "version": (),
}
