"""hack/kube's pure parts: the go.mod it writes, the VERSION file, and `up` without binaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hack.kube.builder import BuildError, BuildInfo, apiserver_go_mod, find_built, staging_modules

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgo.etcd.io/etcd/client/v3 v3.7.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


def test_the_staging_modules_are_what_kubernetes_replaces_with_local_folders() -> None:
    assert staging_modules(KUBERNETES_GO_MOD) == ["k8s.io/api", "k8s.io/client-go"]


def test_our_go_mod_pins_each_staging_module_at_the_matching_v0_release() -> None:
    text = apiserver_go_mod("1.37.2", ["k8s.io/api", "k8s.io/client-go"], "1.26.0")

    assert "require k8s.io/kubernetes v1.37.2\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.37.2\n" in text
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2\n" in text
    assert "go 1.26.0\n" in text


def test_a_go_mod_without_staging_modules_is_an_error() -> None:
    with pytest.raises(BuildError, match="staging"):
        apiserver_go_mod("1.37.2", [], "1.26.0")


def test_the_version_file_round_trips_and_names_a_missing_field() -> None:
    info = BuildInfo("1.37.2", "3.7.0", "go-module-proxy", "go1.26.8")

    assert BuildInfo.from_text(info.to_text()) == info
    assert "v1.37.2" in info.describe()
    with pytest.raises(BuildError, match="route"):
        BuildInfo.from_text("kubernetes=1.37.2\netcd=3.7.0\ngo=go1.26.8\n")


def test_up_without_binaries_exits_2_naming_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESI_KUBE_CACHE", str(tmp_path / "empty-cache"))
    assert find_built() is None

    run = subprocess.run(
        [sys.executable, "-m", "hack.kube", "up", "--dir", str(tmp_path / "plane")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 2
    assert "python -m hack.kube build" in run.stderr
