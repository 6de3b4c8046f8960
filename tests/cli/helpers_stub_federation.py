"""A scripted stand-in for the federation server: stdlib ``http.server`` over TLS on 127.0.0.1.

It serves ``POST /v1/secrets`` and ``GET /v1/whoami`` like the real server (bearer token checked,
403 for stores it does not grant, 404 for missing keys, problem+json errors), and can be told to
answer the next requests with scripted statuses (503 with ``Retry-After``, ...). Every request is
recorded so that tests can assert on what esi-cli sent.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hack.certs import create_ca


@dataclass
class Recorded:
    """One request as the stub received it."""

    method: str
    path: str
    authorization: str
    content_type: str
    body: dict[str, object] | None
    at: float


@dataclass
class Scripted:
    """An answer to give instead of the normal one."""

    status: int
    detail: str = "scripted"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StubFederation:
    """The stub's state: what it holds, who it accepts, what it was asked."""

    token: str
    url: str = ""
    server_ca_file: Path = Path()
    server_ca_pem: str = ""
    granted_stores: set[str] = field(default_factory=lambda: {"vault-prod"})
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    identity: dict[str, str] = field(
        default_factory=lambda: {
            "cluster": "client-cluster-alpha",
            "subject": "system:serviceaccount:monitoring:prometheus-esi-client",
        }
    )
    requests: list[Recorded] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    chunked: bool = False  # answer 200s with Transfer-Encoding: chunked instead of Content-Length
    until_close: bool = False  # answer 200s without a length: the body ends when the connection does
    drip_s: float = 0.0  # send every answer one byte per drip_s seconds (a per-read timeout never fires)

    def answer_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self.script.append(Scripted(status, f"scripted {status}", headers))

    def secret_requests(self) -> list[Recorded]:
        """The recorded ``POST /v1/secrets`` requests."""
        return [request for request in self.requests if request.path == "/v1/secrets"]


def start_stub(tls_dir: Path, token: str) -> tuple[StubFederation, ThreadingHTTPServer]:
    """Start a stub on a free port of 127.0.0.1 with a fresh CA; the caller shuts the server down."""
    ca = create_ca("esi-cli test CA")
    leaf = ca.issue(["127.0.0.1", "localhost"])
    tls_dir.mkdir(parents=True, exist_ok=True)
    (tls_dir / "server-ca.crt").write_bytes(ca.cert_pem)
    (tls_dir / "tls.crt").write_bytes(leaf.cert_pem)
    (tls_dir / "tls.key").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "tls.crt", tls_dir / "tls.key")
    state = StubFederation(token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    # Clients that hang up (a cut dripping answer, a refused certificate) are what tests provoke.
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    state.server_ca_file = tls_dir / "server-ca.crt"
    state.server_ca_pem = ca.cert_pem.decode()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return state, server


def _handler_for(state: StubFederation) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is esi-cli's, not the stub's."""

        def setup(self) -> None:
            super().setup()
            if state.drip_s:
                self.wfile = _Dripping(self.wfile, state.drip_s)  # type: ignore[assignment]

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.requests.append(
                    Recorded(
                        self.command,
                        self.path,
                        self.headers.get("Authorization", ""),
                        self.headers.get("Content-Type", ""),
                        body,
                        time.monotonic(),
                    )
                )
                scripted = state.script.popleft() if state.script else None
            if scripted is not None:
                self._problem(scripted.status, scripted.detail, scripted.headers)
            elif self.headers.get("Authorization") != f"Bearer {state.token}":
                self._problem(401, "the bearer token was not accepted")
            elif self.command == "GET" and self.path == "/v1/whoami":
                self._json(200, {"identity": state.identity, "stores": sorted(state.granted_stores)})
            elif self.command == "POST" and self.path == "/v1/secrets" and isinstance(body, dict):
                self._secrets(body)
            else:
                self._problem(404, f"no route {self.command} {self.path}")

        def _secrets(self, body: dict[str, object]) -> None:
            items = body.get("secrets")
            assert isinstance(items, list)
            denied = [item for item in items if item["store"] not in state.granted_stores]
            if denied:
                self._problem(403, "not granted: " + ", ".join(_name(item) for item in denied))
                return
            answers, missing = [], []
            for item in items:
                secret = state.secrets.get((item["store"], item["key"]))
                prop = item.get("property")
                if secret is None or (prop is not None and prop not in secret):
                    missing.append(_name(item))
                    continue
                value = secret[prop] if prop is not None else json.dumps(secret)
                answers.append({**item, "property": prop, "value": value})
            if missing:
                self._problem(404, "not found: " + ", ".join(missing))
                return
            self._json(200, {"secrets": answers, "identity": state.identity})

        def _json(self, status: int, document: object, content_type: str = "application/json") -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if state.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(data) // 2
                for chunk in (data[:half], data[half:], b""):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                return
            if state.until_close:
                self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _problem(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
            data = json.dumps({"type": "about:blank", "title": "error", "status": status, "detail": detail})
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

    return Handler


class _Dripping:
    """A write side that sends one byte at a time, ``interval`` seconds apart, until the client leaves."""

    def __init__(self, inner: object, interval: float) -> None:
        self._inner = inner
        self._interval = interval

    def write(self, data: bytes) -> int:
        for index in range(len(data)):
            self._inner.write(data[index : index + 1])  # type: ignore[attr-defined]
            self._inner.flush()  # type: ignore[attr-defined]
            time.sleep(self._interval)
        return len(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _name(item: dict[str, str]) -> str:
    prop = item.get("property")
    return f"{item['store']}:{item['key']}" + (f".{prop}" if prop else "")
