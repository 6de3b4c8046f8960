"""Private settings for podman, buildah and skopeo: nothing under /etc is read for configuration or
changed (docs/images.md, "Settings private to the build")."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Mapping
from pathlib import Path

from images.common import run


def container_env(cache: Path) -> dict[str, str]:
    """The environment for podman, buildah and skopeo: private settings only, written into ``cache``.

    runc, because crun refuses the hybrid cgroup layout of these machines; cgroupfs, as there is no
    systemd; ulimits at the hard limits, which even root cannot raise (podman's default nofile would).
    """
    config = cache / "containers"
    config.mkdir(parents=True, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    files = {
        "containers.conf": (
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{cache / "run" / "libpod"}"\n'
        ),
        "storage.conf": (
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{cache / "storage"}"\n'
            f'runroot = "{cache / "run" / "storage"}"\n'
        ),
        # No search registries and no short names: nothing is ever pulled by accident.
        "registries.conf": 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
        "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n",
    }
    for name, text in files.items():
        path = config / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    tmp = cache / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        **os.environ,
        "CONTAINERS_CONF": str(config / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(config / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(config / "registries.conf"),
        "ESI_IMAGES_POLICY": str(config / "policy.json"),
        "TMPDIR": str(tmp),
        "BUILDAH_ISOLATION": "oci",
    }


def policy_args(env: Mapping[str, str]) -> list[str]:
    """buildah's flag for the private signature policy (it reads no environment variable for it)."""
    return ["--signature-policy", env["ESI_IMAGES_POLICY"]]


def working_containers(env: Mapping[str, str]) -> set[str]:
    """The ids of buildah's working containers in the private storage."""
    return set(run(["buildah", "containers", "--quiet"], env, capture=True).split())
