"""The server's list-and-watch loop against the real API server: a watch whose history is gone.

The loop's own code (``ResourceWatcher``) runs against the real API server through a ``KubeApi`` the
test holds back between two watch streams. While it is held: an Authorization is deleted and the API
server is restarted, so that its watch cache starts after the resourceVersion the loop resumes from.
The resumed watch is then refused with 410 Gone, and the loop must list again and see the deletion.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from federation.kube import watch as kube_watch
from federation.kube.api import KubeApi, KubeApiError
from federation.kube.source import AUTHORIZATIONS, ObjectCache
from federation.kube.watch import ResourceWatcher
from hack.kube import ControlPlane
from hack.kube.client import api_client, create_object
from tests.helpers_stack import authorization
from tests.kube.helpers_plane import install_crds

pytestmark = [pytest.mark.kube, pytest.mark.slow]

PATH = "/apis/federation.external-secrets.io/v1alpha1/authorizations"


class HeldApi:
    """A ``KubeApi`` whose next watch waits for ``release`` once ``hold`` was called; records 410s."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api
        self._open = threading.Event()
        self._open.set()
        self.waiting = threading.Event()
        self.gone: list[str] = []  # how each 410 came: "event" (ERROR in the stream) or "status" (HTTP)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._api.get(path, query)

    def watch(self, path: str, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        if not self._open.is_set():
            self.waiting.set()
            self._open.wait(60)
        try:
            for event in self._api.watch(path, resource_version, timeout_seconds):
                if event["type"] == "ERROR" and event["object"].get("code") == 410:
                    self.gone.append("event")
                yield event
        except KubeApiError as exc:
            if exc.status == 410:
                self.gone.append("status")
            raise

    def close(self) -> None:
        self._api.close()


def names(cache: ObjectCache) -> set[str]:
    return {name for (_, name) in cache.of_kind("Authorization")}


def test_a_resumed_watch_whose_history_is_gone_lists_again_and_misses_no_deletion(
    own_kube_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_plane = own_kube_plane  # restarted below: other modules' tests keep theirs undisturbed
    install_crds(kube_plane)
    doomed, kept = (f"watch-{word}-{secrets.token_hex(3)}" for word in ("doomed", "kept"))
    for name in (doomed, kept):
        create_object(kube_plane, authorization(name, issuer=kube_plane.issuer))
    # Short streams: the loop resumes from its last resourceVersion every second.
    monkeypatch.setattr(kube_watch, "WATCH_TIMEOUT_SECONDS", 1)
    api = HeldApi(KubeApi.connect(kube_plane.kubeconfig))
    cache = ObjectCache(on_change=lambda: None)
    stop = threading.Event()
    watcher = ResourceWatcher(api, AUTHORIZATIONS, cache, stop)  # type: ignore[arg-type]
    watcher.start()
    try:
        assert watcher.listed.wait(30)
        assert {doomed, kept} <= names(cache)

        api.hold()
        assert api.waiting.wait(30), "the loop never came back for its next watch"
        api_client(kube_plane).request("DELETE", f"{PATH}/{doomed}")
        kube_plane.restart_apiserver()
        api.release()

        deadline = time.monotonic() + 30
        while doomed in names(cache) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert doomed not in names(cache)
        assert kept in names(cache)
        # kube-apiserver 1.37 sends it as an ERROR event in a 200 stream, as the stand-in does.
        assert api.gone == ["event"], "the API server did not answer 410 Gone: the test proved nothing"
    finally:
        stop.set()
        api.close()
        watcher.join(5)
