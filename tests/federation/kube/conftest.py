"""Fixtures of the Kubernetes-mode tests: an emulated cluster-main and the server watching it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.federation.kube.helpers_kube import EmulatedCluster, KubeStack, kube_stack


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    """An empty cluster-main API server."""
    with EmulatedCluster() as emulated:
        yield emulated


@pytest.fixture
def stack(tmp_path: Path, cluster: EmulatedCluster) -> Iterator[KubeStack]:
    """The federation server in Kubernetes mode, seeded with the walkthrough's resources."""
    with kube_stack(tmp_path, cluster=cluster) as running:
        yield running
