"""Just enough of a Kubernetes API server for Helm's ``lookup`` of core/v1 Secrets.

Helm resolves ``lookup "v1" "Secret" NS NAME`` through discovery (``GET /api/v1``) and then one ``GET`` of
the object. This server answers those two from an in-memory dict, on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers_http import send_json

_DISCOVERY = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret", "verbs": ["get"]}
    ],
}
_NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}


class FakeApiServer(ThreadingHTTPServer):
    """Holds the Secrets served, by (namespace, name), and the paths asked for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        """Base URL of this server."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Serve a Secret with base64 ``data``."""
        self.secrets[namespace, name] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/tls",
            "data": data,
        }


class _Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.paths.append(path)
        parts = path.strip("/").split("/")
        body: dict[str, Any] | None = None
        if path == "/api/v1":
            body = _DISCOVERY
        elif len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            body = self.server.secrets.get((parts[3], parts[5]))
        self._reply(200 if body else 404, body or _NOT_FOUND)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@contextmanager
def fake_apiserver() -> Iterator[FakeApiServer]:
    """A running FakeApiServer, shut down afterwards."""
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
