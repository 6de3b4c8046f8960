"""esi-init copies esi-cli into esi-bin, and that copy runs in application images without glibc.

As in a pod: esi-init runs ``esi-cli fetch`` with ``ESI_BIN_DIR=/esi/bin`` (the webhook's command and
environment), then the application container mounts the same folder read-only at /esi/bin and starts
``/esi/bin/esi-cli exec -- APP``. Two application images: busybox-static alone (no C library at all),
and musl's loader with a program linked against musl (no glibc). Every container runs with
``--network none`` and joins the federation container's network namespace to reach it on loopback.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from images import build
from images.common import run
from images.containers import policy_args
from tests.images.helpers_podman import (
    ARBITRARY_UID,
    BUILD_TIMEOUT_S,
    HARDENING,
    UID,
    FederationContainer,
    Podman,
    shared_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("images"), pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]

REF = "vault-prod:api-keys.service-a-token"
SHOW_ENV_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *value = argc > 1 ? getenv(argv[1]) : NULL;
    if (value == NULL) return 3;
    fputs(value, stdout);
    return 0;
}
"""
MUSL_LOADER = Path("/lib/ld-musl-x86_64.so.1")
ALPINE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def scratch_image(podman: Podman, name: str, files: dict[str, Path]) -> str:
    """A local image FROM scratch with ``files`` (path in the image -> host file), made once per content."""
    key = hashlib.sha256(b"".join(p.encode() + source.read_bytes() for p, source in sorted(files.items())))
    reference = f"localhost/esi-test/{name}:{key.hexdigest()[:12]}"
    if podman.run("image", "exists", reference).exit_code == 0:
        return reference
    env = podman.env
    policy = policy_args(env)
    container = run(["buildah", "from", *policy, "scratch"], env, capture=True).strip()
    try:
        for target, source in files.items():
            run(["buildah", "copy", "--chmod", "0755", container, str(source), target], env, capture=True)
        run(["buildah", "commit", *policy, "--quiet", container, reference], env, capture=True)
    finally:
        subprocess.run(["buildah", "rm", container], env=env, capture_output=True, check=False)
    return reference


@pytest.fixture(scope="module")
def busybox_image(podman: Podman) -> str:
    """busybox-static and nothing else: no C library, no loader."""
    busybox = shutil.which("busybox")
    assert busybox is not None, "busybox-static is missing (hack/system-deps.sh installs it)"
    return scratch_image(podman, "busybox", {"/bin/busybox": Path(busybox)})


@pytest.fixture(scope="module")
def musl_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """musl's loader (which is its libc) and a program dynamically linked against it; no glibc."""
    folder = tmp_path_factory.mktemp("musl")
    (folder / "show-env.c").write_text(SHOW_ENV_C)
    subprocess.run(
        ["musl-gcc", "-Os", "-o", str(folder / "show-env"), str(folder / "show-env.c")],
        check=True,
        timeout=60,
    )
    loader = MUSL_LOADER.resolve()
    return scratch_image(podman, "musl", {str(MUSL_LOADER): loader, "/usr/bin/show-env": folder / "show-env"})


@pytest.fixture(scope="module")
def esi_bin(
    images: dict[str, str],
    podman: Podman,
    federation: FederationContainer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The esi-bin volume after esi-init's env-mode run (fetch + copy), as the webhook configures it."""
    root = tmp_path_factory.mktemp("pod")
    bin_dir = shared_dir(root / "esi-bin", 0o777)  # an emptyDir: writable by the pod's uid
    secrets = shared_dir(root / "esi-secrets", 0o777)
    done = podman.run(
        "run", "--rm", *HARDENING, f"--user={UID}", '--entrypoint=["esi-cli", "fetch"]',
        f"--volume={bin_dir}:/esi/bin", f"--volume={secrets}:/etc/secrets",
        *federation.esi_env(ESI_BIN_DIR="/esi/bin", ESI_FILES=f"service-a.token={REF}"),
        images["esi-init"],
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    matches = (secrets / "service-a.token").read_text() == federation.values["service-a-token"]
    assert matches
    return bin_dir


@pytest.mark.parametrize("uid", [UID, ARBITRARY_UID])
def test_esi_init_prints_its_version(images: dict[str, str], podman: Podman, uid: str) -> None:
    done = podman.hardened(images["esi-init"], "version", uid=uid)

    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"esi-cli {build.app_version()}\n"


def test_esi_init_copies_the_whole_self_contained_folder(esi_bin: Path) -> None:
    copied = {path.relative_to(esi_bin).as_posix() for path in esi_bin.rglob("*") if path.is_file()}

    assert {"esi-cli", "_internal/esi-cli", "_internal/libc.so.6", "_internal/libz.so.1"} <= copied


@pytest.mark.parametrize("uid", [UID, ARBITRARY_UID])
def test_the_copied_esi_cli_runs_in_a_busybox_only_image(
    busybox_image: str, esi_bin: Path, podman: Podman, uid: str
) -> None:
    done = podman.hardened(
        busybox_image, "/esi/bin/esi-cli", "version", uid=uid,
        options=[f"--volume={esi_bin}:/esi/bin:ro", "--entrypoint=[]"],
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"esi-cli {build.app_version()}\n"


def test_the_busybox_image_has_no_c_library(busybox_image: str, podman: Podman) -> None:
    done = podman.hardened(busybox_image, "/bin/busybox", "find", "/", "-xdev", "-name", "*.so*")

    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_copied_esi_cli_execs_a_busybox_shell_with_a_secret(
    busybox_image: str, esi_bin: Path, podman: Podman, federation: FederationContainer
) -> None:
    # The server's CA only in the image's trust store, where alpine keeps it: not where the bundled
    # (Debian) OpenSSL looks, so esi-cli must find it there by itself.
    esi_env = federation.esi_env(system_trust=ALPINE_CA_BUNDLE, ESI_ENV=f"SERVICE_A_TOKEN={REF}")
    done = podman.run(
        "run", "--rm", *HARDENING, f"--user={ARBITRARY_UID}", "--entrypoint=[]",
        f"--volume={esi_bin}:/esi/bin:ro", *esi_env,
        busybox_image,
        "/esi/bin/esi-cli", "exec", "--", "/bin/busybox", "sh", "-c", 'printf %s "$SERVICE_A_TOKEN"',
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    matches = done.stdout == federation.values["service-a-token"]
    assert matches


def test_the_copied_esi_cli_execs_a_musl_program_with_a_secret(
    musl_image: str, esi_bin: Path, podman: Podman, federation: FederationContainer
) -> None:
    done = podman.run(
        "run", "--rm", *HARDENING, f"--user={UID}", "--entrypoint=[]",
        f"--volume={esi_bin}:/esi/bin:ro", *federation.esi_env(ESI_ENV=f"SERVICE_A_TOKEN={REF}"),
        musl_image, "/esi/bin/esi-cli", "exec", "--", "/usr/bin/show-env", "SERVICE_A_TOKEN",
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    matches = done.stdout == federation.values["service-a-token"]
    assert matches


def test_a_denied_secret_stops_the_app_in_the_musl_image(
    musl_image: str, esi_bin: Path, podman: Podman, federation: FederationContainer
) -> None:
    done = podman.run(
        "run", "--rm", *HARDENING, f"--user={UID}", "--entrypoint=[]",
        f"--volume={esi_bin}:/esi/bin:ro", *federation.esi_env(ESI_ENV="X=other-store:api-keys.token"),
        musl_image, "/esi/bin/esi-cli", "exec", "--", "/usr/bin/show-env", "X",
    )  # fmt: skip

    assert done.exit_code == 3, done.stderr  # denied: the app never runs
    assert done.stdout == ""
