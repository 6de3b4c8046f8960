"""esi-init's configured command, run for real against the federation server, as a kubelet would run it.

The webhook's patch is the only source of the command and the environment. The test plays kubelet: each
volume mount becomes a directory under tmp_path, the projected token volume gets a token minted by the
stack's client-cluster issuer and the cluster CA, and path-valued variables follow their mounts.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers_stack import FederationStack
from tests.webhook.helpers_review import apply, review
from tests.webhook.helpers_shapes import P, seed_pod
from webhook.admission import admit
from webhook.reviews import decode
from webhook.settings import Settings

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
# Stands in for /bin/prometheus: reports whether it got the secret, never the value itself.
APP = "import hashlib, os, sys; print(hashlib.sha256(os.environ.get(sys.argv[1], '').encode()).hexdigest())"


class Kubelet:
    """Maps a container's mounts to directories and runs its command with its env, as kubelet does."""

    def __init__(self, root: Path, pod: dict[str, Any], stack: FederationStack, token: str) -> None:
        self.root = root
        self.volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        self.stack = stack
        self.token = token
        self.path = f"{BIN}:/usr/bin:/bin"

    def volume_dir(self, name: str) -> Path:
        """The directory backing volume ``name``, filled like kubelet fills a projected token volume."""
        path = self.root / name
        if not path.exists():
            path.mkdir(parents=True)
            if "projected" in self.volumes[name]:
                (path / "token").write_text(self.token)
                (path / "ca.crt").write_text(self.stack.ca_file.read_text())
        return path

    def run(self, container: dict[str, Any], command: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with ``container``'s env, its mount paths rewritten to the volume directories."""
        mounts = {mount["mountPath"]: self.volume_dir(mount["name"]) for mount in container["volumeMounts"]}
        env = {"PATH": self.path, "ESI_TIMEOUT": "20s"}
        for variable in container["env"]:
            env[variable["name"]] = self.rewrite(variable["value"], mounts)
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT
        )

    @staticmethod
    def rewrite(value: str, mounts: dict[str, Path]) -> str:
        """A path under a mount, moved to the directory that backs the mount."""
        for mount_path, directory in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(directory) + value[len(mount_path) :]
        return value


def mutate(pod: dict[str, Any], stack: FederationStack) -> dict[str, Any]:
    """The pod as the webhook, configured for the stack's federation server, mutates it."""
    settings = Settings(
        cluster_name=stack.cluster,
        server_url=stack.url,
        server_ca_pem=stack.server_ca_file.read_text(),
    )
    decision = admit(decode(json.dumps(review(pod)).encode()), settings)
    assert decision.message is None, decision.message
    return apply(pod, decision.patch)


def esi_init(pod: dict[str, Any]) -> dict[str, Any]:
    """The injected esi-init container."""
    return next(item for item in pod["spec"]["initContainers"] if item["name"] == "esi-init")


def test_esi_init_writes_the_seed_file_with_its_injected_configuration(
    federation_stack: FederationStack, tmp_path: Path
) -> None:
    file_only = seed_pod()
    del file_only["metadata"]["annotations"][P + "env-MY_APP_DB_PASSWORD"]
    pod = mutate(file_only, federation_stack)
    kubelet = Kubelet(tmp_path / "volumes", pod, federation_stack, federation_stack.mint())
    init = esi_init(pod)
    command = [str(BIN / init["command"][0]), *init["command"][1:]]

    done = kubelet.run(init, command)

    assert done.returncode == 0, done.stderr
    written = kubelet.volume_dir("esi-secrets") / "service-a.token"
    matches = written.read_text() == federation_stack.values["service-a-token"]
    assert matches
    assert stat.S_IMODE(written.stat().st_mode) == 0o440
    assert sorted(os.listdir(kubelet.volume_dir("esi-secrets"))) == ["service-a.token"]
    for value in federation_stack.values.values():
        assert value not in done.stdout + done.stderr


def test_the_seed_pods_wrapped_app_gets_its_env_secret_from_esi_cli_exec(
    federation_stack: FederationStack, tmp_path: Path
) -> None:
    pod = mutate(seed_pod(), federation_stack)
    kubelet = Kubelet(tmp_path / "volumes", pod, federation_stack, federation_stack.mint())
    init = dict(esi_init(pod))
    # The development esi-cli is not the self-contained build, so it cannot install itself into esi-bin;
    # here the venv's esi-cli stands in for /esi/bin/esi-cli instead. Everything else runs as injected.
    init["env"] = [variable for variable in init["env"] if variable["name"] != "ESI_BIN_DIR"]
    done = kubelet.run(init, [str(BIN / "esi-cli"), "fetch"])
    assert done.returncode == 0, done.stderr
    assert (kubelet.volume_dir("esi-secrets") / "service-a.token").exists()

    app = pod["spec"]["containers"][0]
    assert app["command"][:3] == ["/esi/bin/esi-cli", "exec", "--"]
    command = [str(BIN / "esi-cli"), *app["command"][1:3], sys.executable, "-c", APP, "MY_APP_DB_PASSWORD"]
    done = kubelet.run(app, command)

    assert done.returncode == 0, done.stderr
    expected = hashlib.sha256(federation_stack.values["password"].encode()).hexdigest()
    assert done.stdout.strip().splitlines()[-1] == expected
    assert federation_stack.values["password"] not in done.stdout + done.stderr


def test_esi_init_of_a_service_account_without_grant_stops_the_pod(
    federation_stack: FederationStack, tmp_path: Path
) -> None:
    pod = mutate(seed_pod(), federation_stack)
    intruder = federation_stack.mint(namespace="default", service_account="default")
    kubelet = Kubelet(tmp_path / "volumes", pod, federation_stack, intruder)
    init = dict(esi_init(pod))
    init["env"] = [variable for variable in init["env"] if variable["name"] != "ESI_BIN_DIR"]

    done = kubelet.run(init, [str(BIN / "esi-cli"), "fetch"])

    assert done.returncode == 3
    assert os.listdir(kubelet.volume_dir("esi-secrets")) == []


def test_the_seed_pod_runs_for_real_with_the_self_contained_esi_cli(
    federation_stack: FederationStack, tmp_path: Path
) -> None:
    # The esi-init image: the one-folder esi-cli build, first on PATH, as `esi-cli` of the image.
    image = tmp_path / "image" / "esi-cli"
    build = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-esi-cli.sh"), str(image)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    pod = mutate(seed_pod(), federation_stack)
    kubelet = Kubelet(tmp_path / "volumes", pod, federation_stack, federation_stack.mint())
    kubelet.path = f"{image}:/usr/bin:/bin"

    init = esi_init(pod)
    done = kubelet.run(init, init["command"])
    assert done.returncode == 0, done.stderr
    assert (kubelet.volume_dir("esi-bin") / "esi-cli").is_file()

    app = pod["spec"]["containers"][0]
    mounts = {mount["mountPath"]: kubelet.volume_dir(mount["name"]) for mount in app["volumeMounts"]}
    wrapper = [Kubelet.rewrite(app["command"][0], mounts), *app["command"][1:3]]
    done = kubelet.run(app, [*wrapper, sys.executable, "-c", APP, "MY_APP_DB_PASSWORD"])

    assert done.returncode == 0, done.stderr
    expected = hashlib.sha256(federation_stack.values["password"].encode()).hexdigest()
    assert done.stdout.strip().splitlines()[-1] == expected
    matches = (kubelet.volume_dir("esi-secrets") / "service-a.token").read_text() == federation_stack.values[
        "service-a-token"
    ]
    assert matches
