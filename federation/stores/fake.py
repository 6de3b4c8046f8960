"""ESO's ``fake`` provider: secrets written in the ClusterSecretStore itself (local runs, tests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from federation.config.model import Configuration, StoreConfig
from federation.errors import SecretNotFound
from federation.settings import Settings
from federation.stores.base import SecretData


def version_order(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of versions: ``v2`` < ``v10``, ``1`` < ``2``; digits compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", version))


class FakeProvider:
    """Serves ``spec.data: [{key, value | valueMap, version?}]`` as ESO does when no version is asked: the
    entry without a version, else the newest version (natural order). A ``valueMap`` (ESO's older form)
    is served as that map."""

    reads_in_memory = True

    def __init__(self, spec: Mapping[str, Any]) -> None:
        chosen: dict[str, tuple[bool, tuple[tuple[int, int | str], ...], SecretData]] = {}
        for item in spec.get("data", []):
            version = item.get("version")
            rank = (version is None, version_order(str(version)) if version is not None else ())
            held = chosen.get(item["key"])
            if held is None or rank >= held[:2]:
                value = item["value"] if item.get("valueMap") is None else dict(item["valueMap"])
                chosen[item["key"]] = (*rank, value)
        self._values = {key: held[2] for key, held in chosen.items()}

    def read(self, key: str) -> SecretData:
        """Return the value stored under ``key``."""
        if key not in self._values:
            raise SecretNotFound(f"key {key!r} does not exist")
        return self._values[key]

    def close(self) -> None:
        """Nothing to release."""


def validate(store: StoreConfig, snapshot: Configuration, settings: Settings) -> None:
    """Nothing beyond the parser's check of ``data``: a fake store that loads can be served."""


def build(store: StoreConfig, snapshot: Configuration, settings: Settings) -> FakeProvider:
    """Provider factory (see ``stores.registry``)."""
    return FakeProvider(store.spec)
