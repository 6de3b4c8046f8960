"""The thin layer that talks to cluster-main's API server: JSON in, JSON out, one error type.

Only this module imports the ``kubernetes`` client (lazily: importing it costs a noticeable part of a
second). It uses the client for what it does well (kubeconfig and in-cluster configuration, bearer
token refresh, client certificates, TLS) and sends plain requests to resource paths; everything above
it works on dicts, exactly as the manifests directory does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
import yaml

from federation.kube.bounded import decode

MERGE_PATCH = "application/merge-patch+json"
# connect, read: a watch sends nothing while nothing changes, so its read timeout is longer than the
# server-side timeoutSeconds it asks for; a plain request gets a short one.
REQUEST_TIMEOUT = (5.0, 15.0)
WATCH_READ_GRACE = 10.0
# A peer that vanished (a dropped NAT entry, a dead node) is noticed by TCP within about 5 + 3 x 3 s,
# even while the stream is legitimately quiet.
KEEPALIVE = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    *(
        (socket.IPPROTO_TCP, getattr(socket, option), value)
        for option, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 3), ("TCP_KEEPCNT", 3))
        if hasattr(socket, option)
    ),
)


class KubeApiError(Exception):
    """A request to the API server failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class KubeApi:
    """JSON requests and watch streams against one API server."""

    def __init__(self, api_client: Any) -> None:
        self._client = api_client
        self._streams_lock = threading.Lock()
        self._streams: set[Any] = set()

    @classmethod
    def connect(cls, kubeconfig: Path | None) -> KubeApi:
        """Client for ``kubeconfig`` (its current context), or the in-cluster configuration when None."""
        from kubernetes import client, config  # noqa: PLC0415 - heavy, and only Kubernetes mode needs it

        configuration = client.Configuration()
        try:
            if kubeconfig is None:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
                )
        except (config.ConfigException, OSError) as exc:
            where = kubeconfig or "the in-cluster configuration"
            raise KubeApiError(0, f"cannot load {where}: {exc}") from exc
        except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:  # a malformed kubeconfig
            raise KubeApiError(0, f"cannot load {kubeconfig}: {type(exc).__name__}") from exc
        configuration.socket_options = [*urllib3.connection.HTTPConnection.default_socket_options, *KEEPALIVE]
        return cls(client.ApiClient(configuration))

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path``: the decoded JSON object."""
        return self._json("GET", path, query=query)

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the collection ``path``."""
        return self._json("POST", path, body=body)

    def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``body`` (with its ``metadata.resourceVersion``: a stale one gets 409)."""
        return self._json("PUT", path, body=body)

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH ``path`` with a JSON merge patch."""
        return self._json("PATCH", path, body=body, content_type=MERGE_PATCH)

    def watch(self, path: str, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        """Watch events of the collection ``path`` from ``resource_version``, until the server ends them.

        ``ERROR`` events are yielded like the others: the caller decides (410 Gone means relist).
        """
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        read_timeout = timeout_seconds + WATCH_READ_GRACE
        response = self._send("GET", path, query=query, timeout=(REQUEST_TIMEOUT[0], read_timeout))
        with self._streams_lock:
            self._streams.add(response)
        try:
            if not 200 <= response.status < 300:
                raise _error(response.status, response.read())
            for line in _lines(response.response):
                try:
                    event = decode(line)
                except ValueError:
                    raise KubeApiError(0, "the watch stream sent a line that is not JSON") from None
                if isinstance(event, dict) and isinstance(event.get("object"), dict):
                    yield event
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(0, f"the watch of {path} broke: {type(exc).__name__}") from exc
        finally:
            with self._streams_lock:
                self._streams.discard(response)
            # Closed, not returned to the pool: a stream left mid-way must not serve the next request.
            response.response.close()
            response.response.release_conn()

    def close(self) -> None:
        """Break every open watch stream (their iterators end with an error) and release the pool."""
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            _shutdown(response.response)
        self._client.rest_client.pool_manager.clear()

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = self._send(method, path, query=query, body=body, content_type=content_type)
        data = response.read()
        if not 200 <= response.status < 300:
            raise _error(response.status, data)
        try:
            document = decode(data)
        except ValueError:
            raise KubeApiError(response.status, f"{method} {path} did not answer JSON") from None
        if not isinstance(document, dict):
            raise KubeApiError(response.status, f"{method} {path} did not answer a JSON object")
        return document

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, body, _ = self._client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415 - loaded by connect()

        try:
            return self._client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(0, f"{method} {path}: {type(exc).__name__}") from exc
        except ApiException as exc:  # the client reports TLS failures this way
            raise KubeApiError(0, f"{method} {path}: TLS error") from exc


def field_map(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` when it is a JSON object, else an empty one (API objects are read defensively)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _error(status: int, data: bytes | None) -> KubeApiError:
    message = "no details"
    try:
        document = json.loads(data or b"")
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        message = document["message"][:300]
    return KubeApiError(status, message)


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[str]:
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=False):
        buffer.extend(chunk)
        while (end := buffer.find(b"\n")) != -1:
            line = bytes(buffer[:end]).strip()
            del buffer[: end + 1]
            if line:
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield bytes(buffer).decode("utf-8", errors="replace")


def _shutdown(response: urllib3.BaseHTTPResponse) -> None:
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return
