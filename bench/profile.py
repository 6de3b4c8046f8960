"""Where one request's CPU goes: each server's app driven in-process, profiled with cProfile.

    .venv/bin/python -m bench.profile                   # both servers and the bare app, 2000 requests each
    .venv/bin/python -m bench.profile --requests 500 --top 25 federation

The app is built as a gunicorn worker builds it (JSON logs, Prometheus in multiprocess mode for the
federation server) and called as gunicorn calls it, with a WSGI environ built once and copied for
each request: no socket, no TLS, no HTTP parsing, which the pod-start and keep-alive benchmarks measure.
The bare baseline app (bench/baseline.py) is profiled the same way, for comparison. Logs go to
/dev/null, as cheaply as a pipe to a collector.
Times are CPU per request: ``own`` is spent in the function itself, ``cumulative`` includes its callees;
``cpu_ms_per_request`` is measured without the profiler, whose own overhead inflates every entry (read
the shares, not the absolute microseconds).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import manifests
from bench.environment import REPO

WARMUP_REQUESTS = 200
READY_TIMEOUT_S = 20.0
SEED_POD = REPO / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"

Send = Callable[[], int]
OUR_PACKAGES = ("federation/", "webhook/", "cli/")


def profile(send: Send, requests: int, top: int) -> dict[str, Any]:
    """CPU per request without the profiler, then the ``top`` entries by own time under cProfile."""
    for _ in range(WARMUP_REQUESTS):
        _expect_ok(send())
    started = time.process_time()
    for _ in range(requests):
        send()
    cpu_ms = (time.process_time() - started) * 1000 / requests
    # CPU time, not wall time: on a shared machine the wall clock also counts other processes' turns.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(requests):
        send()
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        entries.append(
            {
                "function": f"{_short(filename)}:{line}({name})",
                "calls_per_request": round(calls / requests, 2),
                "own_us": round(own * 1e6 / requests, 1),
                "cumulative_us": round(cumulative * 1e6 / requests, 1),
            }
        )
    entries.sort(key=lambda entry: entry["own_us"], reverse=True)
    total_us = sum(entry["own_us"] for entry in entries)
    for entry in entries:
        entry["own_share_pct"] = round(100 * entry["own_us"] / total_us, 1) if total_us else 0.0
    ours = [entry for entry in entries if entry["function"].startswith(OUR_PACKAGES)]
    ours.sort(key=lambda entry: entry["cumulative_us"], reverse=True)
    for entry in ours:
        entry["cumulative_share_pct"] = round(100 * entry["cumulative_us"] / total_us, 1) if total_us else 0.0
    return {
        "requests": requests,
        "cpu_ms_per_request": round(cpu_ms, 3),
        "profiled_us_per_request": round(total_us, 1),
        "top_by_own_time": entries[:top],
        "top_of_ours_by_cumulative_time": ours[:top],
    }


@contextmanager
def webhook_sender() -> Iterator[Send]:
    """``POST /mutate`` of the seed's Prometheus pod, as ``esi-webhook serve`` builds the app."""
    from hack.admission import pod_create_review  # noqa: PLC0415
    from webhook import logs  # noqa: PLC0415
    from webhook.app import create_app  # noqa: PLC0415
    from webhook.settings import Settings  # noqa: PLC0415

    logs.configure("info")
    app = create_app(
        Settings(cluster_name=manifests.CLUSTER, server_url="https://esi-federation.cluster-main.example.com")
    )
    body = json.dumps(pod_create_review(yaml.safe_load(SEED_POD.read_text(encoding="utf-8")))).encode()
    yield _wsgi_sender(app, "/mutate", body, {})


@contextmanager
def federation_sender() -> Iterator[Send]:
    """``POST /v1/secrets`` of the benchmark's 3 secrets from the fake store, with an RS256 token."""
    from federation.app import create_app  # noqa: PLC0415
    from federation.logs import configure_logging  # noqa: PLC0415
    from federation.settings import Settings  # noqa: PLC0415
    from hack.client_issuer import ClientClusterIssuer  # noqa: PLC0415
    from hack.sa_tokens import TokenIssuer, generate_signing_key  # noqa: PLC0415

    issuer = ClientClusterIssuer(TokenIssuer(keys=[generate_signing_key("RS256")])).start()
    try:
        with tempfile.TemporaryDirectory(prefix="esi-profile-") as work:
            directory = Path(work) / "manifests"
            manifests.write_manifests(
                directory,
                {
                    "vault-prod": manifests.fake_store(manifests.seed_secrets()),
                    "client-cluster-alpha": issuer.federation_manifest(
                        manifests.CLUSTER, audiences=[manifests.AUDIENCE]
                    ),
                    "allow-alpha-monitoring": manifests.authorization([manifests.FAKE_STORE]),
                },
            )
            configure_logging("info")
            app = create_app(Settings(manifests_dir=directory, rate_limit=1e9, insecure_http=True))
            token = issuer.mint(manifests.NAMESPACE, manifests.SERVICE_ACCOUNT, [manifests.AUDIENCE])
            _wait_ready(app.test_client())
            yield _wsgi_sender(
                app,
                "/v1/secrets",
                manifests.secrets_request(manifests.FAKE_STORE),
                {"Authorization": f"Bearer {token}"},
            )
            app.extensions["esi.source"].stop()
    finally:
        issuer.stop()


@contextmanager
def bare_sender() -> Iterator[Send]:
    """The bare baseline app (``{"ok": true}``), sent the federation's request body."""
    from bench.baseline import create_bare_app  # noqa: PLC0415

    yield _wsgi_sender(create_bare_app(), "/v1/secrets", manifests.secrets_request(manifests.FAKE_STORE), {})


def _wsgi_sender(app: Any, path: str, body: bytes, headers: dict[str, str]) -> Send:
    """A function sending ``POST path`` with ``body`` to ``app`` as gunicorn would; returns the status."""
    from werkzeug.test import EnvironBuilder  # noqa: PLC0415

    template = EnvironBuilder(
        path=path,
        method="POST",
        data=body,
        headers=headers,
        content_type="application/json",
        base_url="https://127.0.0.1:8443",
    ).get_environ()
    answer: list[str] = []

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> None:
        answer.append(status)

    def send() -> int:
        answer.clear()
        environ = {**template, "wsgi.input": io.BytesIO(body)}
        result = app(environ, start_response)
        try:
            b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(answer[0].split(" ", 1)[0])

    return send


SERVERS = {"webhook": webhook_sender, "federation": federation_sender, "bare": bare_sender}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.profile``: prints each server's profile as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("servers", nargs="*", metavar="webhook|federation|bare", help="default: all three")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server {', '.join(unknown)}: choose from {', '.join(sorted(SERVERS))}")
    print(json.dumps(profile_servers(args.servers or sorted(SERVERS), args.requests, args.top), indent=2))
    return 0


def profile_servers(servers: Sequence[str], requests: int, top: int) -> dict[str, Any]:
    """Each named server's profile; logs and metrics files go to throw-away places."""
    results = {}
    with _quiet_environment():
        for name in servers:
            with SERVERS[name]() as send:
                results[name] = profile(send, requests, top)
    return results


@contextmanager
def _quiet_environment() -> Iterator[None]:
    """Logs to /dev/null, Prometheus' multiprocess files into a temporary directory, both undone after."""
    saved_stderr, saved_dir = sys.stderr, os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    with (
        tempfile.TemporaryDirectory(prefix="esi-profile-metrics-") as metrics_dir,
        open(os.devnull, "w", encoding="utf-8") as devnull,
    ):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr = saved_stderr
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
            if saved_dir is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_dir


def _wait_ready(client: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the federation app was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def _expect_ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"the profiled request answered {status}, not 200")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    try:
        return str(Path(filename).resolve().relative_to(REPO))
    except ValueError:
        return filename


if __name__ == "__main__":
    sys.exit(main())
