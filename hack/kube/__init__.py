"""A real Kubernetes control plane (etcd + kube-apiserver) for tests, built once and cached.

``python -m hack.kube build | up --dir DIR | down --dir DIR``; tests use ``running_plane`` (or the
``kube_plane`` fixture) and the helpers in ``hack.kube.client``. See docs/kubernetes-mode.md.
"""

from hack.kube.builder import BuildError, BuildInfo, build, find_built, read_info
from hack.kube.plane import ISSUER, ControlPlane, MissingBinaries, PlaneError, running_plane

__all__ = [
    "ISSUER",
    "BuildError",
    "BuildInfo",
    "ControlPlane",
    "MissingBinaries",
    "PlaneError",
    "build",
    "find_built",
    "read_info",
    "running_plane",
]
