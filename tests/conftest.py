"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers_stack import FederationStack, running_stack


@pytest.fixture
def federation_stack(tmp_path: Path) -> Iterator[FederationStack]:
    """A federation server over TLS on 127.0.0.1 with client-cluster-alpha registered and granted."""
    with running_stack(tmp_path) as stack:
        yield stack
