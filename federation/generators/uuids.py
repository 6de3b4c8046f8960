"""ESO's ``UUID`` generator: a random (version 4) UUID, ``{"uuid": "..."}``. Its spec is empty."""

from __future__ import annotations

import uuid
from typing import Any

from federation.generators.base import Generated
from federation.generators.model import GeneratorConfig


class UuidGenerator:
    """``UUID``: a new version 4 UUID on every call (``uuid4`` reads the operating system's CSPRNG)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.ref = config.ref

    def generate(self) -> Generated:
        """``{"uuid": ...}`` in the canonical lower-case form."""
        return Generated({"uuid": str(uuid.uuid4())})

    def close(self) -> None:
        """Nothing to release."""


def build(config: GeneratorConfig, **_: Any) -> UuidGenerator:
    """Generator factory (see ``generators.registry``)."""
    return UuidGenerator(config)
