"""A federation server served over real TLS on loopback, with one client cluster registered.

``FederationStack`` is what most tests of the server (and esi-cli's and the webhook's end-to-end
tests) talk to: an in-process app behind werkzeug's threaded TLS server, a manifests directory it
watches, and a ``ClientClusterIssuer`` playing client-cluster-alpha.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from federation.app import create_app, stop_app
from federation.settings import Settings
from hack.certs import create_ca, write_tls_files
from hack.client_issuer import ClientClusterIssuer
from hack.sa_tokens import TokenIssuer

CLUSTER = "client-cluster-alpha"
STORE = "vault-prod"
NAMESPACE = "monitoring"
SERVICE_ACCOUNT = "prometheus-esi-client"
SUBJECT = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
AUDIENCE = "esi-federation"


def seed_values() -> dict[str, str]:
    """Fresh, recognisable secret values, so a leak test can search every log for them."""
    return {
        "username": "user-" + secrets.token_hex(6),
        "password": "pw-" + secrets.token_hex(12),
        "service-a-token": "tok-" + secrets.token_hex(12),
    }


def fake_store(name: str, entries: Mapping[str, Any]) -> dict[str, Any]:
    """A ClusterSecretStore of ESO's fake provider; mapping values are stored as JSON objects."""
    data = [{"key": key, "value": v if isinstance(v, str) else json.dumps(v)} for key, v in entries.items()]
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": name},
        "spec": {"provider": {"fake": {"data": data}}},
    }


def authorization(
    name: str,
    subject: str = SUBJECT,
    *,
    stores: Sequence[str] = (STORE,),
    federation: str = CLUSTER,
    issuer: str = "https://kubernetes.default.svc.cluster.local",
    allowed_secrets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """An Authorization granting ``subject`` of ``federation`` the ``stores``."""
    spec: dict[str, Any] = {
        "federationRef": {"kind": "KubernetesFederation", "name": federation},
        "subject": {"oidc": {"issuer": issuer, "subject": subject}},
        "allowedClusterSecretStores": list(stores),
    }
    if allowed_secrets is not None:
        spec["allowedSecrets"] = list(allowed_secrets)
    return {
        "apiVersion": "federation.external-secrets.io/v1alpha1",
        "kind": "Authorization",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass
class FederationStack:
    """A running federation server and the client cluster registered with it."""

    url: str
    server_ca_file: Path
    ca_file: Path
    manifests_dir: Path
    issuer: ClientClusterIssuer
    app: Flask
    values: dict[str, str] = field(repr=False)  # never in a failing test's output
    cluster: str = CLUSTER
    store: str = STORE
    _server: BaseWSGIServer | None = field(default=None, repr=False)

    def mint(
        self,
        namespace: str = NAMESPACE,
        service_account: str = SERVICE_ACCOUNT,
        audiences: Sequence[str] = (AUDIENCE,),
        **options: Any,
    ) -> str:
        """A valid projected token of client-cluster-alpha."""
        return self.issuer.mint(namespace, service_account, audiences, **options)

    def write(self, filename: str, *documents: Mapping[str, Any]) -> None:
        """Write (or replace) one manifest file of the watched directory, atomically."""
        path = self.manifests_dir / filename
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump_all(list(documents)), encoding="utf-8")
        tmp.replace(path)

    def remove(self, filename: str) -> None:
        """Delete one manifest file."""
        (self.manifests_dir / filename).unlink()

    def wait_for_reload(self, since: int, timeout: float = 5.0) -> None:
        """Wait until the server has loaded (or rejected) a configuration after ``since`` loads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.reload_count() > since:
                return
            time.sleep(0.05)
        raise AssertionError("the server did not reload its configuration in time")

    def reload_count(self) -> int:
        """How many configuration loads (good or bad) the server has counted."""
        metrics = self.app.extensions["esi.metrics"]
        return int(
            sum(
                s.value
                for m in metrics.config_reloads.collect()
                for s in m.samples
                if s.name.endswith("_total")
            )
        )

    def stop(self) -> None:
        """Stop the server, its watcher and the issuer."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        stop_app(self.app)
        self.issuer.stop()


def serve_over_tls(app: Flask, directory: Path) -> tuple[BaseWSGIServer, Path]:
    """Serve ``app`` over TLS on 127.0.0.1 (a free port) in a thread; the server and its CA file."""
    server_ca = create_ca("federation server test CA")
    tls = write_tls_files(directory, server_ca, server_ca.issue(["127.0.0.1", "localhost"]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    threading.Thread(target=server.serve_forever, name="federation-test-server", daemon=True).start()
    return server, tls.ca_file


# What every test server runs with unless the test says otherwise: no rate limit in the way, one worker.
TEST_SERVER_DEFAULTS: Mapping[str, Any] = {"rate_limit": 1000.0, "workers": 1}


def serve_federation(
    cleanup: ExitStack, directory: Path, options: Mapping[str, Any]
) -> tuple[Flask, BaseWSGIServer, Path]:
    """``create_app`` with ``options`` over ``TEST_SERVER_DEFAULTS``, served over TLS (``serve_over_tls``
    in ``directory``); ``cleanup`` shuts the server down, then stops the app. The app, server, CA file."""
    app = create_app(Settings(**{**TEST_SERVER_DEFAULTS, **options}))
    cleanup.callback(stop_app, app)
    server, server_ca_file = serve_over_tls(app, directory)
    cleanup.callback(server.server_close)
    cleanup.callback(server.shutdown)
    return app, server, server_ca_file


@contextmanager
def running_stack(tmp_path: Path, **settings: Any) -> Iterator[FederationStack]:
    """Start a ``FederationStack`` seeded with the walkthrough's resources; stop it afterwards."""
    with ExitStack() as undo_on_failure:
        issuer = ClientClusterIssuer().start()
        undo_on_failure.callback(issuer.stop)
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        values = seed_values()
        ca_file = tmp_path / "client-ca.crt"
        ca_file.write_text(issuer.ca_pem, encoding="utf-8")
        _write_seed(manifests, issuer, values)
        app, server, server_ca_file = serve_federation(
            undo_on_failure,
            tmp_path / "tls",
            {"manifests_dir": manifests, "reload_interval": 0.2, **settings},
        )
        undo_on_failure.pop_all()  # from here on, stack.stop() undoes all of it
    stack = FederationStack(
        url=f"https://127.0.0.1:{server.server_port}",
        server_ca_file=server_ca_file,
        ca_file=ca_file,
        manifests_dir=manifests,
        issuer=issuer,
        app=app,
        values=values,
        _server=server,
    )
    try:
        yield stack
    finally:
        stack.stop()


def _write_seed(directory: Path, issuer: ClientClusterIssuer, values: Mapping[str, str]) -> None:
    documents = {
        "vault-prod.yaml": fake_store(
            STORE,
            {
                "db-credentials": {"username": values["username"], "password": values["password"]},
                "api-keys": {"service-a-token": values["service-a-token"]},
            },
        ),
        "client-cluster-alpha.yaml": issuer.federation_manifest(CLUSTER, audiences=[AUDIENCE]),
        "allow-alpha-monitoring.yaml": authorization("allow-alpha-monitoring"),
    }
    for filename, document in documents.items():
        (directory / filename).write_text(yaml.safe_dump(document), encoding="utf-8")


def start_cluster(clusters: ExitStack, name: str, **options: Any) -> ClientClusterIssuer:
    """A client-cluster stand-in with issuer ``https://<name>.example``, stopped when ``clusters`` closes."""
    return clusters.enter_context(ClientClusterIssuer(TokenIssuer(f"https://{name}.example"), **options))
