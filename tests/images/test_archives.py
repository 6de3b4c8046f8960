"""The archives `make images` writes: names the charts use, labels, user, what the images hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from images import build
from images.common import ROOT as REPO_ROOT
from tests.images.helpers_podman import BUILD_TIMEOUT_S, Podman, archive_config, archive_files, archive_index

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("images"), pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]

CHARTS = REPO_ROOT / "charts"
PYTHON_ENTRYPOINT = "--entrypoint=/opt/esi-federation/bin/python"


def chart_default_images() -> dict[str, str]:
    """Image name -> the reference a default install of the charts pulls (repository:appVersion)."""
    found = {}
    for chart, paths in {
        "esi-federation-server": [("image",)],
        "esi-webhook": [("image",), ("initContainer", "image")],
    }.items():
        values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
        app_version = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())["appVersion"]
        for path in paths:
            image = values
            for key in path:
                image = image[key]
            assert image["tag"] in ("", None), f"{chart}: a default tag other than the appVersion"
            repository = image["repository"]
            found[repository.rsplit("/", 1)[1]] = f"{repository}:{app_version}"
    return found


def test_the_charts_default_images_are_the_archives_tags(archives: dict[str, Path]) -> None:
    tags = {
        name: archive_index(path)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        for name, path in archives.items()
    }

    assert chart_default_images() == tags


def test_images_carry_source_version_and_licence_labels(archives: dict[str, Path]) -> None:
    version = build.app_version()
    for name, path in archives.items():
        labels = archive_config(path)["config"]["Labels"]

        assert labels["org.opencontainers.image.source"].startswith("https://")
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert labels["org.opencontainers.image.title"] == name


def test_images_run_as_uid_65532(archives: dict[str, Path]) -> None:
    users = {name: archive_config(path)["config"]["User"] for name, path in archives.items()}

    assert users == dict.fromkeys(build.NAMES, "65532:65532")


def test_each_image_has_a_package_list(archives: dict[str, Path]) -> None:
    for name, path in archives.items():
        listing = (path.parent / f"{name}.packages.txt").read_text()

        if name == "esi-init":
            assert "libc6 " in listing  # the C library esi-cli carries
            assert "musl-tools " in listing  # the toolchain that built it
        else:
            assert "libpython3.11-stdlib " in listing
            assert "kubernetes " in listing
            assert "esi-federation " in listing


def test_server_images_hold_no_installer_shell_or_package_manager(
    images: dict[str, str], podman: Podman
) -> None:
    probe = (
        "import importlib.util, os\n"
        "names = ['pip', 'setuptools', 'ensurepip']\n"
        "found = [n for n in names if importlib.util.find_spec(n)]\n"
        "paths = ['/bin/sh', '/usr/bin/sh', '/bin/bash', '/usr/bin/dpkg', '/usr/bin/apt',\n"
        "         '/usr/bin/apt-get', '/usr/bin/gcc', '/usr/bin/cc', '/opt/esi-federation/bin/pip',\n"
        "         '/bin/tar', '/usr/bin/tar', '/sbin/start-stop-daemon', '/var/lib/dpkg']\n"
        "found += [p for p in paths if os.path.lexists(p)]\n"
        "print(','.join(found))\n"
    )
    for name in ("esi-federation", "esi-webhook"):
        done = podman.hardened(
            images[name], "-c", probe, options=["--entrypoint=/opt/esi-federation/bin/python"]
        )

        assert done.exit_code == 0, done.stderr
        assert done.stdout.strip() == ""


COMPILED_PROBE = """
import importlib.util, os
import federation.main, webhook.main, kubernetes.client, ssl, json
import kubernetes.client.models.v1_pod  # one of the generated modules kept as .pyc only
modules = [federation.main, webhook.main, kubernetes.client, ssl, json, kubernetes.client.models.v1_pod]
def compiled(module):
    path = module.__file__
    return path.endswith(".pyc") or os.path.exists(importlib.util.cache_from_source(path))
print(",".join(module.__name__ for module in modules if not compiled(module)))
"""
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
KUBE_CLIENT_PROBE = f"""
import pathlib
from federation.kube.api import KubeApi
config = pathlib.Path("/tmp/kubeconfig")
config.write_text({KUBECONFIG!r})
print(type(KubeApi.connect(config)).__name__)
"""


def test_server_images_start_from_compiled_modules(images: dict[str, str], podman: Podman) -> None:
    # With a read-only root (and PYTHONDONTWRITEBYTECODE), a module without its .pyc would be compiled
    # again on every start: the application's, the dependencies' and the standard library's all have one.
    done = podman.hardened(images["esi-federation"], "-c", COMPILED_PROBE, options=[PYTHON_ENTRYPOINT])

    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_trimmed_kubernetes_client_still_loads_a_kubeconfig(
    images: dict[str, str], podman: Podman
) -> None:
    # /tmp is podman's tmpfs, as the charts mount an emptyDir there.
    done = podman.hardened(images["esi-federation"], "-c", KUBE_CLIENT_PROBE, options=[PYTHON_ENTRYPOINT])

    assert done.exit_code == 0, done.stderr
    assert done.stdout == "KubeApi\n"


def test_esi_init_holds_only_esi_cli(
    archives: dict[str, Path], images: dict[str, str], podman: Podman
) -> None:
    done = podman.hardened(images["esi-init"], "version")
    files = archive_files(archives["esi-init"])

    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"esi-cli {build.app_version()}\n"
    # FROM scratch: esi-cli's folder, the CA file its OpenSSL reads, and the user database.
    outside = {name for name in files if not name.startswith("opt/esi-cli/")}
    assert outside == {"etc/passwd", "etc/group", "usr/lib/ssl/cert.pem"}
    assert {
        "opt/esi-cli/esi-cli",
        "opt/esi-cli/_internal/esi-cli",
        "opt/esi-cli/_internal/libc.so.6",
    } <= files
