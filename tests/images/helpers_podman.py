"""What the image tests share: podman with the build's private settings, archives, containers.

podman runs with the image build's private settings (images/containers.py: its cache's storage, runc,
the ulimits), so these tests change nothing on the machine. Every container runs with ``--network
none``: where a client must reach a server, it joins the server container's network namespace
(``--network container:ID``), so the two talk over that namespace's own loopback and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from hack.certs import create_ca, write_tls_files
from images.common import ROOT
from images.inputs import app_packages

REPO_ROOT = ROOT
ARCHIVES = REPO_ROOT / "build" / "images"
# What an image is built from: an archive older than any of these is rebuilt.
INPUTS = (
    *app_packages(), "images", "pyproject.toml", "hack/build-esi-cli.sh", "hack/esi-cli-launcher.c",
    "charts/esi-federation-server/Chart.yaml", "charts/esi-webhook/Chart.yaml",
)  # fmt: skip
BUILD_TIMEOUT_S = 1500
UID = "65532"
ARBITRARY_UID = "43117"


@dataclass(frozen=True)
class Done:
    """A finished podman command."""

    exit_code: int
    stdout: str
    stderr: str


class Podman:
    """podman with the build's private settings."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def run(self, *argv: str, timeout: float = 120, stdin: str | None = None) -> Done:
        """``podman ARGV``: its exit code and output."""
        done = subprocess.run(
            ["podman", *argv],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Done(done.returncode, done.stdout, done.stderr)

    def ok(self, *argv: str, timeout: float = 120) -> str:
        """``podman ARGV``, which must succeed: its standard output."""
        done = self.run(*argv, timeout=timeout)
        assert done.exit_code == 0, f"podman {' '.join(argv[:4])}: {done.stderr[-1500:]}"
        return done.stdout

    def hardened(self, image: str, *argv: str, uid: str = UID, options: Sequence[str] = ()) -> Done:
        """Run ``image`` as the charts run it: read-only root, no network, non-root, no capabilities."""
        return self.run("run", "--rm", *HARDENING, "--network=none", f"--user={uid}", *options, image, *argv)


# What the charts' securityContext asks for, in podman's words. --read-only keeps podman's tmpfs on
# /tmp, as the charts mount an emptyDir there.
HARDENING = ("--read-only", "--cap-drop=all", "--security-opt=no-new-privileges")


def newest_input() -> float:
    """The modification time of the newest file the images are built from."""
    newest = 0.0
    for name in INPUTS:
        path = REPO_ROOT / name
        files = (
            [path]
            if path.is_file()
            else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def archive_index(archive: Path) -> dict:
    """The ``index.json`` of an OCI archive."""
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile("index.json"))


def archive_files(archive: Path) -> set[str]:
    """The regular files and symbolic links of all layers of an OCI archive (paths without a leading /)."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile("blobs/" + index["manifests"][0]["digest"].replace(":", "/")))
        names = set()
        for layer in manifest["layers"]:
            blob = tar.extractfile("blobs/" + layer["digest"].replace(":", "/"))
            with tarfile.open(fileobj=blob, mode="r|*") as layer_tar:
                names |= {m.name.removeprefix("./") for m in layer_tar if m.isfile() or m.issym()}
        return names


def archive_config(archive: Path) -> dict:
    """The image configuration of an OCI archive (its only manifest's config blob)."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest_digest = index["manifests"][0]["digest"].replace(":", "/")
        manifest = json.load(tar.extractfile(f"blobs/{manifest_digest}"))
        config_digest = manifest["config"]["digest"].replace(":", "/")
        return json.load(tar.extractfile(f"blobs/{config_digest}"))


def shared_dir(path: Path, mode: int = 0o755) -> Path:
    """``path``, made usable by the containers' uid, which owns nothing here.

    Only the mounted folder's own mode matters: root makes the bind mount, so the folders above it
    need not be open.
    """
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    for child in path.iterdir():
        child.chmod(0o755 if child.is_dir() else 0o644)
    return path


@dataclass
class RunningContainer:
    """A detached container, removed by its id at the end."""

    podman: Podman
    id: str

    def exec(self, *argv: str, stdin: str | None = None) -> Done:
        """Run ``argv`` inside the container."""
        return self.podman.run("exec", "--interactive", self.id, *argv, stdin=stdin)

    def logs(self) -> str:
        """What the container wrote so far."""
        done = self.podman.run("logs", self.id)
        return done.stdout + done.stderr

    def wait_until(self, *probe: str, timeout: float = 60) -> None:
        """Poll ``probe`` inside the container until it succeeds; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.exec(*probe)
            if done.exit_code == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{probe[0]} never succeeded: {done.stderr[-500:]}\n{self.logs()[-2000:]}")
            time.sleep(0.5)


def start(started: list[RunningContainer], podman: Podman, *argv: str) -> RunningContainer:
    """``podman run --detach ARGV``, registered for removal."""
    name = f"esi-test-{uuid.uuid4().hex[:8]}"
    container_id = podman.ok("run", "--detach", f"--name={name}", *argv).strip()
    container = RunningContainer(podman, container_id)
    started.append(container)
    return container


@dataclass
class FederationContainer:
    """The esi-federation image serving a local configuration, as a server for the esi-cli tests."""

    container: RunningContainer
    tls_dir: Path
    token_dir: Path
    values: dict[str, str]
    url: str = "https://127.0.0.1:8443"

    def esi_env(self, system_trust: str | None = None, **extra: str) -> list[str]:
        """``--env``/``--volume`` options that point an esi-cli in a joined container at this server.

        The server's CA is given with ESI_SERVER_CA_FILE, or with ``system_trust`` mounted at that
        path of the image as its system CA bundle (and no ESI_SERVER_CA_FILE).
        """
        options = [
            f"--network=container:{self.container.id}",
            f"--volume={self.token_dir}:/var/run/secrets/esi:ro",
            f"--env=ESI_SERVER={self.url}",
        ]
        if system_trust is None:
            options += [f"--volume={self.tls_dir}:/tls:ro", "--env=ESI_SERVER_CA_FILE=/tls/ca.crt"]
        else:
            options += [f"--volume={self.tls_dir / 'ca.crt'}:{system_trust}:ro"]
        return options + [f"--env={name}={value}" for name, value in extra.items()]


HEALTHZ_PROBE = (
    "import ssl, sys, urllib.request\n"
    "context = ssl.create_default_context(cafile='/tls/ca.crt')\n"
    "answer = urllib.request.urlopen('https://127.0.0.1:8443/healthz', context=context, timeout=5)\n"
    "print(answer.status, answer.read().decode())\n"
)


def tls_dir(path: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1, readable by the containers' uid (tests only)."""
    ca = create_ca()
    files = write_tls_files(shared_dir(path), ca, ca.issue(["127.0.0.1", "localhost"]))
    files.key_file.chmod(0o644)  # a Secret volume's defaultMode; here any uid must read it
    return path
