"""The bare baseline: a Flask endpoint that answers a fixed small JSON, under a real server's gunicorn setup.

The gunicorn configuration is not copied but taken from the server it stands next to: ``webhook`` uses
``webhook.server.gunicorn_options`` (the same worker class, workers, threads, TLS context, keep-alive,
timeouts and logging as ``esi-webhook serve``), ``federation`` subclasses ``federation.server.GunicornServer``
and only swaps the app it loads. A difference in throughput is then the application's own cost.

Started by ``bench.run`` as a process of its own::

    python -m bench.baseline webhook --bind 127.0.0.1:PORT --tls-cert F --tls-key F --workers 2 --threads 4
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

FIXED_ANSWER = {"ok": True}


def create_bare_app() -> Flask:
    """A Flask app whose every route and method answers ``{"ok": true}``: the least a Flask app can do."""
    app = Flask("bench.baseline")

    def bare(path: str = "") -> dict[str, bool]:
        return FIXED_ANSWER

    app.add_url_rule("/", "bare", bare, methods=["GET", "POST"])
    app.add_url_rule("/<path:path>", "bare_path", bare, methods=["GET", "POST"])
    return app


class _OptionsApplication(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn with a given option dict, loading the bare app."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_bare_app()


def serve_like_webhook(args: argparse.Namespace) -> None:
    """Serve the bare app with exactly the options ``esi-webhook serve`` gives gunicorn."""
    from webhook.server import gunicorn_options  # noqa: PLC0415

    options = gunicorn_options(
        bind=args.bind,
        cert_file=str(args.tls_cert),
        key_file=str(args.tls_key),
        workers=args.workers,
        threads=args.threads,
        log_level="info",
    )
    _OptionsApplication(options).run()


def serve_like_federation(args: argparse.Namespace) -> None:
    """Serve the bare app with exactly the configuration ``esi-federation serve`` gives gunicorn."""
    from federation.server import GunicornServer  # noqa: PLC0415
    from federation.settings import Settings  # noqa: PLC0415

    class _BareFederationServer(GunicornServer):  # type: ignore[misc]
        def load(self) -> Flask:
            return create_bare_app()

    settings = Settings(
        bind=args.bind,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        workers=args.workers,
        threads=args.threads,
    )
    _BareFederationServer(settings).run()


SERVERS = {"webhook": serve_like_webhook, "federation": serve_like_federation}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.baseline``."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n")[0])
    parser.add_argument("like", choices=sorted(SERVERS), help="whose gunicorn configuration to use")
    parser.add_argument("--bind", required=True, metavar="HOST:PORT")
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    SERVERS[args.like](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
