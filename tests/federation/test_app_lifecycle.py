"""app.create_app: an app that fails while being built leaves no thread running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from federation import app as app_module
from federation.settings import Settings


class RecordingSource:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_a_failure_after_the_source_started_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = RecordingSource()
    monkeypatch.setattr(app_module, "start_source", lambda *args: source)

    def failing_revoker(*args: Any) -> None:
        raise RuntimeError("the revoker could not start")

    monkeypatch.setattr(app_module, "start_revoker", failing_revoker)
    with pytest.raises(RuntimeError, match="revoker"):
        app_module.create_app(Settings(manifests_dir=tmp_path))
    assert source.stopped


def test_routes_are_registered_before_any_thread_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_register = app_module.api.register

    def register(app: Any) -> None:
        order.append("routes")
        real_register(app)

    def start_source(*args: Any) -> RecordingSource:
        order.append("source")
        return RecordingSource()

    monkeypatch.setattr(app_module.api, "register", register)
    monkeypatch.setattr(app_module, "start_source", start_source)
    app_module.create_app(Settings(manifests_dir=tmp_path))
    assert order == ["routes", "source"]
