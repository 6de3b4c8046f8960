"""The server's settings: one frozen dataclass, built from flags, validated at start-up.

Tests build ``Settings(...)`` directly and pass it to ``create_app``; nothing is read from the
environment at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Everything the federation server is configured with."""

    manifests_dir: Path | None = None
    kubernetes: bool = False
    kubeconfig: Path | None = None
    audience: str = "esi-federation"
    allow_extra_audiences: bool = False
    max_token_lifetime: float = 3600.0
    token_leeway: float = 60.0
    rate_limit: float = 50.0
    # Counted from when the read starts; docs/vault.md gives the exact staleness bound.
    store_cache_ttl: float = 3.0
    store_connect_timeout: float = 3.0
    store_read_timeout: float = 10.0
    jwks_refresh_interval: float = 300.0
    jwks_unknown_kid_interval: float = 30.0
    jwks_max_stale: float = 24 * 3600.0
    jwks_connect_timeout: float = 2.0
    jwks_total_timeout: float = 5.0
    reload_interval: float = 2.0
    lease_namespace: str | None = None
    # Kubernetes mode: namespaces whose Secrets a KubernetesFederation may name (its token is sent to the
    # federation's URL). None: the server's own namespace; ("*",): any.
    federation_secret_namespaces: tuple[str, ...] | None = None
    lease_name: str = "esi-federation-status"
    lease_duration: float = 15.0
    status_interval: float = 10.0
    token_review_cache_ttl: float = 10.0
    shared_state_dir: Path | None = None
    state_dir: Path | None = None
    pod_check_interval: float = 30.0
    service_account_token_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    bind: str = "0.0.0.0:8443"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    workers: int = 2
    threads: int = 8
    log_level: str = "info"

    def validate(self) -> list[str]:
        """Return every problem with these settings (empty when they can serve)."""
        problems = []
        if self.kubernetes == (self.manifests_dir is not None):
            problems.append("give exactly one configuration source: --manifests DIR or --kubernetes")
        if not self.insecure_http and (self.tls_cert is None or self.tls_key is None):
            problems.append("--tls-cert and --tls-key are required (or --insecure-http, for tests only)")
        if not self.audience:
            problems.append("--audience must not be empty")
        if self.max_token_lifetime <= 0:
            problems.append("--max-token-lifetime must be positive")
        if self.rate_limit <= 0:
            problems.append("--rate-limit must be positive")
        if self.workers < 1 or self.threads < 1:
            problems.append("--workers and --threads must be at least 1")
        if self.lease_duration < 3 or self.status_interval <= 0:
            problems.append("--lease-duration must be at least 3 s and the status interval positive")
        if not 0 < self.pod_check_interval <= 60:
            problems.append("--pod-check-interval must be more than 0 and at most 60 s")
        if self.token_review_cache_ttl < 0:
            problems.append("--token-review-cache-ttl must not be negative")
        if self.store_read_timeout >= 30:
            problems.append("store timeouts must stay below gunicorn's 30 s worker timeout")
        return problems
