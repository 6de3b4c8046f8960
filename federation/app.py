"""``create_app(settings)``: builds the services, wires them into the Flask app, starts the source.

Also the WSGI entry for plain gunicorn: ``gunicorn 'federation.app:create_app()'`` reads its settings
from ``ESI_FEDERATION_*`` environment variables (see ``settings_from_environment``).
"""

from __future__ import annotations

import os

from flask import Flask

from federation import api
from federation.config.holder import ConfigHolder
from federation.config.manifests import ManifestsWatcher
from federation.errors import ConfigurationError
from federation.generators.issuance import Credentials
from federation.generators.leases import LeaseStore, LocalLeaseStore
from federation.generators.pods import PodChecker
from federation.generators.registry import GeneratorRegistry
from federation.generators.revoker import Revoker
from federation.jwks import Fetcher, JwksRegistry, fetch_jwks
from federation.metrics import Metrics
from federation.options import settings_from
from federation.ratelimit import RateLimiter
from federation.service import FederationService
from federation.settings import Settings
from federation.stores.reader import StoreReader
from federation.stores.registry import StoreRegistry
from federation.stores.shared_reads import SharedReads
from federation.tokenreview import TokenReviewer
from federation.tokens import TokenVerifier


def create_app(
    settings: Settings | None = None,
    *,
    jwks_fetcher: Fetcher = fetch_jwks,
    shared_reads: SharedReads | None = None,
) -> Flask:
    """Build the federation server's app and start its configuration source.

    ``shared_reads``: the table the workers of ``esi-federation serve`` share store reads through.
    """
    settings = settings or settings_from_environment()
    metrics = Metrics()
    holder = ConfigHolder(metrics)
    registry = StoreRegistry(settings)
    keys = JwksRegistry(settings, metrics, jwks_fetcher)
    credentials = build_credentials(settings, metrics)
    service = FederationService(
        holder=holder,
        verifier=TokenVerifier(settings, keys),
        reader=StoreReader(registry, metrics, settings.store_cache_ttl, shared=shared_reads),
        limiter=RateLimiter(settings.rate_limit / settings.workers),
        metrics=metrics,
        reviewer=TokenReviewer(settings),
        credentials=credentials,
    )
    app = Flask("federation")
    # One byte over the limit, so that api.py can tell a cut-off chunked body from one that fits.
    app.config["MAX_CONTENT_LENGTH"] = api.MAX_BODY_BYTES + 1
    app.extensions["esi.settings"] = settings
    app.extensions["esi.metrics"] = metrics
    app.extensions["esi.service"] = service
    # Routes first, so that the source's threads start only for an app that is otherwise complete.
    api.register(app)
    source = start_source(settings, holder, keys)
    app.extensions["esi.source"] = source
    try:
        if credentials.store is None and settings.kubernetes:
            credentials.store = kube_lease_store(source, holder)
        app.extensions["esi.revoker"] = start_revoker(settings, holder, credentials, metrics)
    except BaseException:
        stop_app(app)  # no watch or status thread outlives an app that was never handed out
        raise
    return app


def stop_app(app: Flask) -> None:
    """Stop the threads ``create_app`` started: the lease revoker first (it lists records through the
    source's API client), then the configuration source with its watches and status writer."""
    revoker = app.extensions.get("esi.revoker")
    if revoker is not None:
        revoker.stop()
    source = app.extensions.get("esi.source")
    if source is not None:
        source.stop()


def build_credentials(settings: Settings, metrics: Metrics) -> Credentials:
    """Generators, with lease records in ``--state-dir`` when it is set (else no revocable ones)."""
    store = LocalLeaseStore(settings.state_dir) if settings.state_dir is not None else None
    return Credentials(GeneratorRegistry(settings), store, metrics)


def kube_lease_store(source: object, holder: ConfigHolder) -> LeaseStore:
    """Kubernetes mode without ``--state-dir``: records in ``AuthorizedIdentity`` resources, renewed and
    revoked by the holder of the status Lease."""
    from federation.kube.records import KubeLeaseStore  # noqa: PLC0415 - Kubernetes mode only
    from federation.kube.source import KubernetesSource  # noqa: PLC0415

    assert isinstance(source, KubernetesSource)

    def is_leader() -> bool:
        writer = source.status_writer
        return writer is not None and writer.lease.held

    def issuer_of(federation: str) -> str:
        known = holder.current.federations.get(federation)
        return known.issuer if known is not None else ""

    return KubeLeaseStore(lambda: source.api, is_leader, issuer_of)


def start_revoker(
    settings: Settings, holder: ConfigHolder, credentials: Credentials, metrics: Metrics
) -> Revoker | None:
    """Start the renew/revoke loop in every worker; only the leader acts (the state directory's lock in
    local mode, the status Lease in Kubernetes mode)."""
    if credentials.store is None:
        return None
    revoker = Revoker(
        lambda: holder.current,
        credentials,
        PodChecker(settings),
        metrics,
        settings.pod_check_interval,
        is_leader=credentials.store.is_leader,
    )
    revoker.start()
    return revoker


def start_source(settings: Settings, holder: ConfigHolder, keys: JwksRegistry | None = None) -> object:
    """Start the configuration source the settings name; return it (it has a ``stop()``).

    ``keys`` lets the Kubernetes source report each federation's key set in its status.
    """
    if settings.manifests_dir is not None:
        watcher = ManifestsWatcher(settings.manifests_dir, holder, settings.reload_interval)
        watcher.start()
        return watcher
    if settings.kubernetes:
        from federation.kube.source import KubernetesSource  # noqa: PLC0415 - the kubernetes client is heavy

        source = KubernetesSource(settings, holder, keys)
        source.start()
        return source
    raise ConfigurationError(["no configuration source: give --manifests DIR or --kubernetes"])


def settings_from_environment() -> Settings:
    """Settings for plain gunicorn: every ``serve`` flag's ``ESI_FEDERATION_*`` variable, else its default."""
    return settings_from({}, os.environ)
