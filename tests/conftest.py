"""Fixtures shared by every test folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from hack.kube import ControlPlane, MissingBinaries, find_built, read_info
from tests.helpers_stack import FederationStack, running_stack


def pytest_report_header(config: pytest.Config) -> str:
    """Which Kubernetes the tests marked ``kube`` run against (from the cache's VERSION file)."""
    built = find_built()
    if built is None:
        return "real API server for tests marked kube: not built (python -m hack.kube build)"
    return f"real API server for tests marked kube: {read_info(built).describe()} in {built}"


@pytest.fixture(autouse=True)
def _programs_logging_undone() -> Iterator[None]:
    """Undo what a program's own logging set-up did to the root logger in this process.

    ``esi-federation`` and ``esi-webhook`` send the root logger to the ``sys.stderr`` of the moment,
    which under pytest is the test's capture: left in place, every later log line from any thread goes to
    that closed stream ("Logging error ... I/O operation on closed file").
    """
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def clusters() -> Iterator[ExitStack]:
    """Client-cluster stand-ins a test starts (``tests.helpers_stack.start_cluster``), stopped after it."""
    with ExitStack() as started:
        yield started


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
    with _started_plane(tmp_path_factory.mktemp("kube-plane")) as plane:
        yield plane


@pytest.fixture(scope="module")
def own_kube_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane for one test module alone (about 10 s to start).

    For tests that see every cluster-scoped object (a server in Kubernetes mode reads every
    KubernetesFederation: another module's federation for the same API server publishes the same keys,
    which the server rightly refuses in both) or that restart the API server.
    """
    with _started_plane(tmp_path_factory.mktemp("own-kube-plane")) as plane:
        yield plane


@contextmanager
def _started_plane(directory: Path) -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane(directory)
    except MissingBinaries as exc:
        pytest.fail(str(exc))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
