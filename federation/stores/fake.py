"""ESO's ``fake`` provider: secrets written in the ClusterSecretStore itself (local runs, tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from federation.config.model import Configuration, StoreConfig
from federation.errors import SecretNotFound
from federation.settings import Settings
from federation.stores.base import SecretData


class FakeProvider:
    """Serves ``spec.data: [{key, value, version?}]``; an unversioned entry wins over versioned ones."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._values: dict[str, str] = {}
        for item in spec.get("data", []):
            if item["key"] not in self._values or "version" not in item:
                self._values[item["key"]] = item["value"]

    def read(self, key: str) -> SecretData:
        """Return the value stored under ``key``."""
        if key not in self._values:
            raise SecretNotFound(f"key {key!r} does not exist")
        return self._values[key]

    def close(self) -> None:
        """Nothing to release."""


def build(store: StoreConfig, current: Callable[[], Configuration], settings: Settings) -> FakeProvider:
    """Provider factory (see ``stores.registry``)."""
    return FakeProvider(store.spec)
