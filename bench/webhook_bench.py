"""``/mutate`` of the seed's Prometheus pod, next to a bare Flask endpoint under the same gunicorn setup."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import yaml

from bench.compare import Contender, LoadPlan, take_turns
from bench.environment import REPO, Environment
from bench.loadgen import LoadResult, Request
from hack.admission import pod_create_review

SEED_POD = REPO / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
SERVER_URL = "https://esi-federation.cluster-main.example.com"
CLUSTER = "client-cluster-alpha"
WORKERS, THREADS = 2, 4  # esi-webhook serve's defaults


@dataclass(frozen=True)
class WebhookNumbers:
    """The webhook under load and its baseline."""

    webhook: LoadResult
    baseline: LoadResult
    workers: int
    threads: int


def run(env: Environment, plan: LoadPlan) -> WebhookNumbers:
    """Start esi-webhook and the bare baseline, load them in turns, stop them."""
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
            results = take_turns(
                [
                    Contender("baseline", baseline_target, request, baseline.cpu_seconds),
                    Contender("webhook", webhook_target, request, webhook.cpu_seconds),
                ],
                plan,
            )
        finally:
            baseline.stop()
    finally:
        webhook.stop()
    return WebhookNumbers(results["webhook"], results["baseline"], WORKERS, THREADS)
