"""``/mutate`` of the seed's Prometheus pod, next to a bare Flask endpoint under the same gunicorn setup."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import yaml

from bench.compare import Contender, LoadPlan, handshake_cost, take_turns
from bench.environment import REPO, Environment
from bench.loadgen import LoadResult, Request
from hack.admission import pod_create_review

SEED_POD = REPO / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
SERVER_URL = "https://esi-federation.cluster-main.example.com"
CLUSTER = "client-cluster-alpha"
WORKERS, THREADS = 2, 4  # esi-webhook serve's defaults


@dataclass(frozen=True)
class WebhookNumbers:
    """The webhook under load and its baseline, in both patterns, and their cost of a bare handshake."""

    webhook: LoadResult
    baseline: LoadResult
    pod_start_webhook: LoadResult
    pod_start_baseline: LoadResult
    handshake_webhook: LoadResult
    handshake_baseline: LoadResult
    workers: int
    threads: int


def run(env: Environment, plan: LoadPlan, pod_start: LoadPlan, handshake_seconds: float) -> WebhookNumbers:
    """Start esi-webhook and the bare baseline, load them in turns in both patterns, stop them."""
    pod = yaml.safe_load(SEED_POD.read_text(encoding="utf-8"))
    body = json.dumps(pod_create_review(pod)).encode()
    request = Request("POST", "/mutate", body, {"Content-Type": "application/json"})
    sizing = ["--workers", str(WORKERS), "--threads", str(THREADS)]
    webhook, webhook_target = env.start_server(
        "webhook",
        [
            env.program("esi-webhook"),
            "serve",
            *sizing,
            "--server-url",
            SERVER_URL,
            "--server-ca-file",
            str(env.tls.ca_file),
            "--cluster-name",
            CLUSTER,
        ],
    )
    try:
        baseline, baseline_target = env.start_server(
            "webhook-baseline", [sys.executable, "-m", "bench.baseline", "webhook", *sizing]
        )
        try:
            contenders = [
                Contender("baseline", baseline_target, request, baseline.cpu_seconds),
                Contender("webhook", webhook_target, request, webhook.cpu_seconds),
            ]
            keep_alive = take_turns(contenders, plan)
            fresh = take_turns(contenders, pod_start)
            connections = pod_start.connections
            return WebhookNumbers(
                webhook=keep_alive["webhook"],
                baseline=keep_alive["baseline"],
                pod_start_webhook=fresh["webhook"],
                pod_start_baseline=fresh["baseline"],
                handshake_webhook=handshake_cost(
                    webhook_target, webhook.cpu_seconds, connections, handshake_seconds
                ),
                handshake_baseline=handshake_cost(
                    baseline_target, baseline.cpu_seconds, connections, handshake_seconds
                ),
                workers=WORKERS,
                threads=THREADS,
            )
        finally:
            baseline.stop()
    finally:
        webhook.stop()
