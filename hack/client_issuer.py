"""A stand-in for a client cluster's API server: OIDC discovery and a JWKS over HTTPS, plus token minting.

It serves what the federation server fetches from a real client cluster, and nothing else::

    GET /.well-known/openid-configuration   the discovery document
    GET /openid/v1/jwks                     the key set (application/jwk-set+json)
    POST /apis/authentication.k8s.io/v1/tokenreviews   TokenReview (``hack.token_review``)
    GET /api/v1/namespaces/<ns>/pods/<name> the pods that tokens were minted for (name, namespace, uid)

and mints ServiceAccount tokens that verify against that key set (``hack.sa_tokens``). Its TLS
certificate is issued by the cluster's own CA (``ca_pem``): that CA is what a ``KubernetesFederation``
puts in ``spec.caBundle`` and what esi-cli sends as ``caCert``.

In tests::

    with ClientClusterIssuer() as cluster:                        # 127.0.0.1, a free port
        token = cluster.mint("monitoring", "prometheus-esi-client", ["esi-federation"])
        manifest = cluster.federation_manifest("client-cluster-alpha")
        cluster.set_jwks_behaviour(JwksBehaviour(status=503))      # an outage
        cluster.delete_pod("monitoring", "prometheus-0")           # its tokens fail TokenReview
        assert cluster.jwks_requests == 1

From the command line (the demo), from the repository root::

    python -m hack.client_issuer serve --state-dir DIR [--bind 127.0.0.1:0]
    python -m hack.client_issuer mint --state-dir DIR --namespace NS --service-account SA \\
        --audience AUD --out TOKEN_FILE

``serve`` writes ``DIR/ca.crt``, ``DIR/signing-key.pem`` (0600), ``DIR/issuer.json`` and
``DIR/federation.yaml``, prints one ``ready`` line with the URL, and serves until SIGINT/SIGTERM.
``mint`` writes the token to a 0600 file and never prints it.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml

from hack.certs import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, create_ca, server_ssl_context, write_file
from hack.sa_tokens import (
    DEFAULT_ISSUER,
    DEFAULT_LIFETIME_S,
    SUPPORTED_ALGORITHMS,
    TokenIssuer,
    generate_signing_key,
    load_signing_key,
)
from hack.token_review import review, token_review

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
MAX_REVIEW_BODY = 1024 * 1024
JWKS_CONTENT_TYPE = "application/jwk-set+json"
DISCOVERY_CONTENT_TYPE = "application/json"
# What kube-apiserver can answer a TokenReview with (JSON, YAML, protobuf); only JSON is ever sent here.
REVIEW_CONTENT_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
FEDERATION_API_VERSION = "identity.federation.external-secrets.io/v1alpha1"
POD_PATH = re.compile(r"^/api/v1/namespaces/([a-z0-9][-a-z0-9]*)/pods/([a-z0-9][-.a-z0-9]*)$")


class IssuerError(Exception):
    """The issuer cannot start or its state directory cannot be used."""


@dataclass(frozen=True)
class JwksBehaviour:
    """How the JWKS endpoint answers. Tests swap it to play outages, slow or hostile servers.

    ``status`` other than 200 answers with a Kubernetes ``Status`` body; ``body`` replaces the served
    key set (oversized or malformed documents); ``redirect_to`` answers 302 to that URL (a verifier must
    not follow it); ``delay_s`` sleeps before answering (timeouts); ``drip_s`` sends the answer one byte
    every ``drip_s`` seconds (a total deadline must cut it off, a per-read timeout never fires).
    """

    status: int = 200
    delay_s: float = 0.0
    drip_s: float = 0.0
    body: bytes | None = None
    redirect_to: str | None = None


@dataclass(frozen=True)
class SeenRequest:
    """One request the issuer answered; the bearer token itself is never kept."""

    method: str
    path: str
    had_bearer_token: bool
    status: int


class ClientClusterIssuer:
    """An HTTPS server on 127.0.0.0/8 playing a client cluster's API server: discovery, JWKS, TokenReview."""

    def __init__(
        self,
        tokens: TokenIssuer | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        required_bearer_token: str | None = None,
        reviewer_token: str | None = None,
    ) -> None:
        """Nothing binds until ``start``.

        ``required_bearer_token``: discovery and JWKS answer 401 without it (a cluster that does not
        serve discovery anonymously). ``reviewer_token``: TokenReview answers 401 without it; when
        None, any caller may ask for reviews.
        """
        if not _is_loopback_v4(host):
            raise IssuerError(f"the issuer binds to 127.0.0.0/8 only, not {host!r}")
        self.tokens = tokens or TokenIssuer()
        self.host = host
        self.ca = create_ca("client-cluster CA")
        self._requested_port = port
        self._required_bearer_token = required_bearer_token
        self._reviewer_token = reviewer_token
        self._deleted_pods: set[tuple[str, str]] = set()
        self._pods: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid of pods that exist
        self._behaviour = JwksBehaviour()
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ClientClusterIssuer:
        """Bind, and serve in a background thread. Returns self."""
        if self._server is not None:
            raise IssuerError("the issuer is already running")
        leaf = self.ca.issue([self.host, "localhost"], common_name="kube-apiserver")
        context = _context_from_pems(leaf.cert_pem, leaf.key_pem)
        server = _IssuerHTTPServer((self.host, self._requested_port), _Handler, self)
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="client-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> ClientClusterIssuer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- where it is -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the free one the system picked when started with port 0)."""
        if self._server is None:
            raise IssuerError("the issuer is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The API server URL: ``spec.url`` of the ``KubernetesFederation``."""
        return f"https://{self.host}:{self.port}"

    @property
    def jwks_url(self) -> str:
        """Where the key set is served."""
        return self.url + JWKS_PATH

    @property
    def discovery_url(self) -> str:
        """Where the discovery document is served."""
        return self.url + DISCOVERY_PATH

    @property
    def ca_pem(self) -> str:
        """The cluster CA, PEM text: ``spec.caBundle``, ``kube-root-ca.crt``, esi-cli's ``caCert``."""
        return self.ca.cert_pem.decode("ascii")

    @property
    def issuer(self) -> str:
        """The ``iss`` of this cluster's tokens: ``spec.issuer``."""
        return self.tokens.issuer

    # -- tokens and manifests --------------------------------------------------------------------

    def mint(
        self,
        namespace: str,
        service_account: str,
        audiences: Iterable[str],
        *,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        pod_name: str = "",
        now: int | None = None,
    ) -> str:
        """A projected ServiceAccount token of this cluster (see ``TokenIssuer.mint``).

        With ``pod_name``, the pod exists from now on (with one uid for all its tokens) until
        ``delete_pod``; a token minted after that is a deleted pod's token (same uid), as a test of a
        refused token needs.
        """
        pod_uid = None
        if pod_name:
            with self._lock:
                pod_uid = self._pods.setdefault((namespace, pod_name), str(uuid.uuid4()))
        return self.tokens.mint(
            namespace,
            service_account,
            audiences,
            lifetime_s=lifetime_s,
            pod_name=pod_name,
            pod_uid=pod_uid,
            now=now,
        )

    def pod_uid(self, namespace: str, pod_name: str) -> str | None:
        """The uid of an existing pod, or None."""
        with self._lock:
            if (namespace, pod_name) in self._deleted_pods:
                return None
            return self._pods.get((namespace, pod_name))

    def federation_manifest(
        self, name: str, audiences: Sequence[str] | None = None, with_ca_bundle: bool = True
    ) -> dict[str, Any]:
        """A ``KubernetesFederation`` that registers this cluster with the federation server."""
        spec: dict[str, Any] = {"url": self.url, "issuer": self.issuer}
        if with_ca_bundle:
            spec["caBundle"] = self.ca_pem
        if audiences is not None:
            spec["audiences"] = list(audiences)
        return {
            "apiVersion": FEDERATION_API_VERSION,
            "kind": "KubernetesFederation",
            "metadata": {"name": name},
            "spec": spec,
        }

    # -- what tests steer and observe ------------------------------------------------------------

    def set_jwks_behaviour(self, behaviour: JwksBehaviour) -> None:
        """Change how the JWKS endpoint answers from the next request on."""
        with self._lock:
            self._behaviour = behaviour

    @property
    def jwks_behaviour(self) -> JwksBehaviour:
        """How the JWKS endpoint answers now."""
        with self._lock:
            return self._behaviour

    @property
    def requests(self) -> tuple[SeenRequest, ...]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return tuple(self._seen)

    @property
    def jwks_requests(self) -> int:
        """How many times the key set was asked for (whatever the answer)."""
        return sum(1 for seen in self.requests if seen.path == JWKS_PATH)

    def delete_pod(self, namespace: str, pod_name: str) -> None:
        """Forget a pod: tokens bound to it still verify offline but no longer pass TokenReview, and
        ``GET`` of the pod answers 404."""
        with self._lock:
            self._deleted_pods.add((namespace, pod_name))

    def review(self, token: str, audiences: Sequence[str] | None) -> dict[str, Any]:
        """The TokenReview status this cluster gives ``token`` (see ``hack.token_review.review``)."""
        with self._lock:
            deleted = frozenset(self._deleted_pods)
        return review(self.tokens, token, audiences, deleted)

    @property
    def token_reviews(self) -> int:
        """How many TokenReviews were asked for (whatever the answer)."""
        return sum(1 for seen in self.requests if seen.path == TOKEN_REVIEW_PATH)

    def reset_requests(self) -> None:
        """Forget the requests seen so far (e.g. after a warm-up)."""
        with self._lock:
            self._seen.clear()

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self._seen.append(seen)

    def _pod_document(self, path: str) -> dict[str, Any] | None:
        match = POD_PATH.match(path)
        if match is None:
            return None
        namespace, name = match.group(1), match.group(2)
        with self._lock:
            uid = self._pods.get((namespace, name))
            if (namespace, name) in self._deleted_pods:
                uid = None
        if uid is None:
            return None
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
        }

    def _bearer_accepted(self, authorization: str | None, path: str) -> bool:
        reviewer_path = path == TOKEN_REVIEW_PATH or POD_PATH.match(path) is not None
        required = self._reviewer_token if reviewer_path else self._required_bearer_token
        if required is None:
            return True
        presented = (authorization or "").removeprefix("Bearer ")
        return hmac.compare_digest(presented.encode(), required.encode())


class _IssuerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections of a burst of concurrent verifiers.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: failed handshakes and dropped clients are what tests provoke on purpose."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], issuer: ClientClusterIssuer
    ) -> None:
        self.issuer = issuer
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _IssuerHTTPServer
    protocol_version = "HTTP/1.1"
    # A stalled client must not hold a thread for ever.
    timeout = 10
    # Headers and body leave in one write without Nagle's delay: otherwise every answer waits
    # about 40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024

    def do_GET(self) -> None:
        issuer = self.server.issuer
        path = self.path.split("?", 1)[0]
        authorization = self.headers.get("Authorization")
        accept = self.headers.get("Accept")
        if not issuer._bearer_accepted(authorization, path):
            status = self._send_status(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        elif path == DISCOVERY_PATH and not accepts(accept, (DISCOVERY_CONTENT_TYPE,)):
            status = self._send_not_acceptable()
        elif path == DISCOVERY_PATH:
            status = self._send_json(
                HTTPStatus.OK, issuer.tokens.discovery(issuer.jwks_url), DISCOVERY_CONTENT_TYPE
            )
        elif path == JWKS_PATH and not accepts(accept, (JWKS_CONTENT_TYPE,)):
            status = self._send_not_acceptable()
        elif path == JWKS_PATH:
            status = self._send_jwks(issuer)
        elif (pod := issuer._pod_document(path)) is not None:
            status = self._send_json(HTTPStatus.OK, pod, "application/json")
        else:
            status = self._send_status(
                HTTPStatus.NOT_FOUND, "the server could not find the requested resource"
            )
        issuer._record(SeenRequest("GET", path, authorization is not None, status))

    def do_POST(self) -> None:
        issuer = self.server.issuer
        path = self.path.split("?", 1)[0]
        authorization = self.headers.get("Authorization")
        if path != TOKEN_REVIEW_PATH:
            self.close_connection = True
            status = self._send_status(
                HTTPStatus.NOT_FOUND, "the server could not find the requested resource"
            )
        elif not issuer._bearer_accepted(authorization, path):
            self.close_connection = True
            status = self._send_status(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        elif not accepts(self.headers.get("Accept"), REVIEW_CONTENT_TYPES, wildcards=True):
            self.close_connection = True
            status = self._send_not_acceptable()
        else:
            status = self._answer_review(issuer)
        issuer._record(SeenRequest("POST", path, authorization is not None, status))

    def _answer_review(self, issuer: ClientClusterIssuer) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REVIEW_BODY:
            self.close_connection = True
            return self._send_status(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request entity too large")
        try:
            body = json.loads(self.rfile.read(length))
            spec = body["spec"]
            token, audiences = spec["token"], spec.get("audiences")
            if not isinstance(token, str) or not _is_string_list_or_none(audiences):
                raise TypeError("spec.token must be a string and spec.audiences a list of strings")
        except (ValueError, KeyError, TypeError):
            return self._send_status(HTTPStatus.BAD_REQUEST, "a TokenReview with spec.token is required")
        document = token_review(issuer.review(token, audiences), audiences)
        return self._send_json(HTTPStatus.CREATED, document, "application/json")

    def _send_jwks(self, issuer: ClientClusterIssuer) -> int:
        behaviour = issuer.jwks_behaviour
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        if behaviour.redirect_to is not None:
            return self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": behaviour.redirect_to})
        if behaviour.status != HTTPStatus.OK:
            return self._send_status(HTTPStatus(behaviour.status), "the key set is not available")
        if behaviour.body is not None:
            return self._send(HTTPStatus.OK, behaviour.body, JWKS_CONTENT_TYPE)
        if behaviour.drip_s:
            return self._drip(json.dumps(issuer.tokens.jwks()).encode(), issuer)
        cache = {"Cache-Control": "public, max-age=3600"}  # what kube-apiserver sends with its key set
        return self._send(HTTPStatus.OK, json.dumps(issuer.tokens.jwks()).encode(), JWKS_CONTENT_TYPE, cache)

    def _drip(self, body: bytes, issuer: ClientClusterIssuer) -> int:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {JWKS_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
        answer = head.encode() + body
        self.close_connection = True
        for index in range(len(answer)):
            interval = issuer.jwks_behaviour.drip_s
            # A test that stops dripping gets the rest of the answer at once.
            chunk = answer[index : index + 1] if interval else answer[index:]
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except OSError:
                break
            if not interval:
                break
            time.sleep(interval)
        return int(HTTPStatus.OK)

    def _send_not_acceptable(self) -> int:
        # go-restful's own answer, which is what kube-apiserver's discovery routes give.
        return self._send(HTTPStatus.NOT_ACCEPTABLE, b"406: Not Acceptable", "text/plain; charset=utf-8")

    def _send_status(self, status: HTTPStatus, message: str) -> int:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": status.phrase.replace(" ", ""),
            "code": int(status),
        }
        return self._send_json(status, body, "application/json")

    def _send_json(self, status: HTTPStatus, document: Any, content_type: str) -> int:
        return self._send(status, json.dumps(document).encode(), content_type)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return int(status)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests observe ``ClientClusterIssuer.requests`` instead of stderr."""


def accepts(accept: str | None, produces: Sequence[str], *, wildcards: bool = False) -> bool:
    """Whether an ``Accept`` header admits one of ``produces``, the way kube-apiserver decides.

    The discovery and JWKS routes are go-restful routes: an absent header or ``*/*`` admits anything,
    otherwise a media range must name a produced type exactly (``application/*`` does not match). The
    TokenReview API negotiates through apimachinery, which also honours ``type/*`` (``wildcards``).
    """
    if not accept or not accept.strip():
        return True
    for media_range in accept.split(","):
        media_type = media_range.split(";", 1)[0].strip().lower()
        if media_type == "*/*" or media_type in produces:
            return True
        if wildcards and media_type.endswith("/*"):
            prefix = media_type[:-1]
            if any(produced.startswith(prefix) for produced in produces):
                return True
    return False


def _context_from_pems(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """ssl.SSLContext.load_cert_chain reads files only, so the PEMs go to a private temp directory."""
    with tempfile.TemporaryDirectory(prefix="client-issuer-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        write_file(cert_file, cert_pem, PUBLIC_FILE_MODE)
        write_file(key_file, key_pem, PRIVATE_FILE_MODE)
        return server_ssl_context(cert_file, key_file)


def _is_string_list_or_none(value: object) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _is_loopback_v4(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


# -- command line ------------------------------------------------------------------------------


def _parse_bind(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _serve(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    host, port = args.bind
    required = _read_optional(args.require_bearer_token_file)
    reviewer = _read_optional(args.reviewer_token_file)
    tokens = TokenIssuer(args.issuer, [generate_signing_key(args.algorithm)])
    cluster = ClientClusterIssuer(tokens, host, port, required_bearer_token=required, reviewer_token=reviewer)
    cluster.start()
    try:
        _write_state(state_dir, cluster, args.cluster_name)
        print(f"ready: client-cluster issuer {args.cluster_name} at {cluster.url}", flush=True)
        _wait_for_signal()
    finally:
        cluster.stop()
    return 0


def _read_optional(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path is not None else None


def _write_state(state_dir: Path, cluster: ClientClusterIssuer, cluster_name: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    key = cluster.tokens.signing_key
    write_file(state_dir / "signing-key.pem", key.private_pem(), PRIVATE_FILE_MODE)
    write_file(state_dir / "ca.crt", cluster.ca.cert_pem, PUBLIC_FILE_MODE)
    state = {
        "url": cluster.url,
        "issuer": cluster.issuer,
        "jwks_url": cluster.jwks_url,
        "algorithm": key.algorithm,
        "kid": key.kid,
        "cluster": cluster_name,
    }
    write_file(state_dir / "issuer.json", json.dumps(state, indent=2).encode() + b"\n", PUBLIC_FILE_MODE)
    manifest = yaml.safe_dump(cluster.federation_manifest(cluster_name), sort_keys=False)
    write_file(state_dir / "federation.yaml", manifest.encode(), PUBLIC_FILE_MODE)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stop.wait()


def _mint(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    try:
        state = json.loads((state_dir / "issuer.json").read_text())
        key = load_signing_key((state_dir / "signing-key.pem").read_bytes(), state["algorithm"])
    except (OSError, ValueError, KeyError) as exc:
        raise IssuerError(f"{state_dir} is not a state directory written by 'serve': {exc}") from exc
    tokens = TokenIssuer(state["issuer"], [key])
    token = tokens.mint(
        args.namespace, args.service_account, args.audience, lifetime_s=args.lifetime, pod_name=args.pod_name
    )
    write_file(args.out, token.encode("ascii"), PRIVATE_FILE_MODE)
    print(f"wrote a token for system:serviceaccount:{args.namespace}:{args.service_account} to {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hack.client_issuer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve discovery and JWKS until SIGINT/SIGTERM")
    serve.add_argument("--state-dir", type=Path, required=True, help="where ca.crt, keys, manifests go")
    serve.add_argument("--bind", type=_parse_bind, default=("127.0.0.1", 0), help="HOST:PORT on 127/8")
    serve.add_argument("--issuer", default=DEFAULT_ISSUER, help="the iss of minted tokens")
    serve.add_argument("--algorithm", default="RS256", choices=SUPPORTED_ALGORITHMS)
    serve.add_argument("--cluster-name", default="client-cluster-alpha", help="KubernetesFederation name")
    serve.add_argument("--require-bearer-token-file", type=Path, help="answer 401 without this bearer")
    serve.add_argument("--reviewer-token-file", type=Path, help="TokenReview answers 401 without this bearer")
    serve.set_defaults(run=_serve)
    mint = commands.add_parser("mint", help="write a ServiceAccount token to a 0600 file")
    mint.add_argument("--state-dir", type=Path, required=True, help="the directory 'serve' wrote")
    mint.add_argument("--namespace", required=True)
    mint.add_argument("--service-account", required=True)
    mint.add_argument("--audience", action="append", required=True, help="repeatable")
    mint.add_argument("--lifetime", type=int, default=DEFAULT_LIFETIME_S, help="seconds")
    mint.add_argument("--pod-name", default="", help="bind the token to this pod")
    mint.add_argument("--out", type=Path, required=True, help="token file (written 0600)")
    mint.set_defaults(run=_mint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hack.client_issuer``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (IssuerError, OSError) as exc:
        print(f"hack.client_issuer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
