"""Prometheus metrics of the federation server.

Each app owns a ``Metrics`` bound to its own registry, so tests can build many apps. Under gunicorn
the ``serve`` command sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start; ``/metrics`` then
aggregates every worker's values.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from serving.metric_children import LabelledChildren

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every metric the server writes, created against ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # ``child(metric, *labels)``: the request path's children, looked up once.
        self.child = LabelledChildren()
        r = self.registry
        self.requests = Counter(
            "esi_federation_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "esi_federation_request_duration_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "esi_federation_decisions",
            "Secret requests by decision: allowed, denied, unauthenticated, invalid, not_found, error.",
            ["decision"],
            registry=r,
        )
        self.jwks_fetches = Counter(
            "esi_federation_jwks_fetches",
            "JWKS fetches by federation and result.",
            ["federation", "result"],
            registry=r,
        )
        self.jwks_stale = Gauge(
            "esi_federation_jwks_stale",
            "1 while a federation's last good keys are used because refreshing them fails.",
            ["federation"],
            multiprocess_mode="max",
            registry=r,
        )
        self.jwks_duplicate_keys = Gauge(
            "esi_federation_jwks_duplicate_keys",
            "Keys refused because the same key is published by another federation.",
            ["federation"],
            multiprocess_mode="max",
            registry=r,
        )
        self.store_reads = Counter(
            "esi_federation_store_reads",
            "Reads sent to a store, by store and result.",
            ["store", "result"],
            registry=r,
        )
        self.store_read_seconds = Histogram(
            "esi_federation_store_read_duration_seconds",
            "Time of one store read.",
            ["store"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_merged_reads = Counter(
            "esi_federation_store_merged_reads",
            "Reads answered by an identical read already in flight (or by the cache).",
            ["store", "how"],
            registry=r,
        )
        self.config_reloads = Counter(
            "esi_federation_config_reloads",
            "Configuration loads by result: ok or error.",
            ["result"],
            registry=r,
        )
        self.config_generation = Gauge(
            "esi_federation_config_last_success_timestamp_seconds",
            "When the configuration in force was loaded.",
            multiprocess_mode="max",
            registry=r,
        )
        self.config_ignored = Gauge(
            "esi_federation_config_ignored_resources",
            "Resources skipped in the configuration in force (a store of a provider not served, ...).",
            multiprocess_mode="max",
            registry=r,
        )
        self.kube_watch_failures = Counter(
            "esi_federation_kube_watch_failures",
            "Kubernetes mode: lists or watches that failed and were restarted, by resource.",
            ["resource"],
            registry=r,
        )
        self.kube_objects_refused = Counter(
            "esi_federation_kube_objects_refused",
            "Kubernetes mode: objects refused because they nest too deeply, by kind.",
            ["kind"],
            registry=r,
        )
        self.credentials_issued = Counter(
            "esi_federation_credentials_issued",
            "Generated values handed out, by generator kind.",
            ["kind"],
            registry=r,
        )
        self.credentials_renewed = Counter(
            "esi_federation_credentials_renewed",
            "Leases of generated credentials renewed because their pod still exists.",
            ["kind"],
            registry=r,
        )
        self.credentials_revoked = Counter(
            "esi_federation_credentials_revoked",
            "Generated credentials revoked, by reason: owner, others, pod_gone, lease_end, batch_failed.",
            ["kind", "reason"],
            registry=r,
        )
        self.credential_failures = Counter(
            "esi_federation_credential_failures",
            "Failed generator operations, by operation: issue, record, renew, revoke, pod_check.",
            ["operation"],
            registry=r,
        )
        self.rate_limited = Counter(
            "esi_federation_rate_limited",
            "Requests refused by the per-subject rate limit, by the caller's federation (client cluster).",
            ["federation"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text format for ``/metrics``: every worker's values under gunicorn, else this registry's."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            aggregate = CollectorRegistry()
            MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
            return generate_latest(aggregate)
        return generate_latest(self.registry)
