"""``python -m hack.kube build | up --dir DIR | down --dir DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hack.kube.builder import ROUTE_DEBIAN, ROUTE_PROXY, BuildError, build, read_info
from hack.kube.plane import ControlPlane, MissingBinaries, PlaneError

EXIT_MISSING = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Build the binaries, or start/stop a control plane in a directory."""
    parser = argparse.ArgumentParser(prog="python -m hack.kube", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build kube-apiserver and etcd into the cache (once)")
    build_cmd.add_argument(
        "--route", choices=(ROUTE_PROXY, ROUTE_DEBIAN), help="force a route (default: proxy when reachable)"
    )
    up = commands.add_parser("up", help="start etcd and kube-apiserver on 127.0.0.1")
    up.add_argument("--dir", type=Path, required=True, help="directory for keys, data, logs, kubeconfig")
    down = commands.add_parser("down", help="stop what `up` started in --dir")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            started = time.monotonic()
            directory = build(route=args.route)
            print(f"# {read_info(directory).describe()}; {time.monotonic() - started:.0f} s", file=sys.stderr)
            print(directory)
        elif args.command == "up":
            plane = ControlPlane(args.dir).start()
            print(f"# {plane.info.describe()} at {plane.url}", file=sys.stderr)
            print(f"KUBECONFIG={plane.kubeconfig}")
        else:
            ControlPlane.attach(args.dir).stop()
    except MissingBinaries as exc:
        print(f"hack.kube: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except (BuildError, PlaneError, OSError) as exc:
        print(f"hack.kube: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
