"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.kube import ControlPlane, MissingBinaries, find_built, read_info
from tests.helpers_stack import FederationStack, running_stack


def pytest_report_header(config: pytest.Config) -> str:
    """Which Kubernetes the tests marked ``kube`` run against (from the cache's VERSION file)."""
    built = find_built()
    if built is None:
        return "kube-apiserver: not built (python -m hack.kube build)"
    return f"kube-apiserver: {read_info(built).describe()} in {built}"


@pytest.fixture
def federation_stack(tmp_path: Path) -> Iterator[FederationStack]:
    """A federation server over TLS on 127.0.0.1 with client-cluster-alpha registered and granted."""
    with running_stack(tmp_path) as stack:
        yield stack


@pytest.fixture(scope="session")
def kube_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver on 127.0.0.1, one per xdist worker, for the whole session.

    Tests share it: each uses namespaces and object names of its own. A missing build fails the test
    (``make test`` builds first): a Kubernetes-facing test never passes by being skipped.
    """
    try:
        plane = ControlPlane(tmp_path_factory.mktemp("kube-plane"))
    except MissingBinaries as exc:
        pytest.fail(str(exc))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
