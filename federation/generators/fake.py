"""ESO's ``Fake`` generator: answers ``spec.data`` (a map of strings) as it is, for tests and demos."""

from __future__ import annotations

from typing import Any

from federation.generators.base import Generated
from federation.generators.model import GeneratorConfig, GeneratorSpecError


def parse_data(config: GeneratorConfig) -> dict[str, str]:
    """``spec.data``; ``GeneratorSpecError`` unless it maps non-empty names to strings."""
    data = config.spec.get("data", {})
    if not isinstance(data, dict) or not all(
        isinstance(key, str) and key and isinstance(value, str) for key, value in data.items()
    ):
        raise GeneratorSpecError(f"{config.ref.describe()}: data must map non-empty names to strings")
    return dict(data)


class FakeGenerator:
    """``Fake``: the same map on every call."""

    def __init__(self, config: GeneratorConfig) -> None:
        self._data = parse_data(config)

    def generate(self) -> Generated:
        """A copy of ``spec.data``."""
        return Generated(dict(self._data))

    def close(self) -> None:
        """Nothing to release."""


def build(config: GeneratorConfig, **_: Any) -> FakeGenerator:
    """Generator factory (see ``generators.registry``)."""
    return FakeGenerator(config)
