"""Fixtures of the image tests: the archives (built when missing or stale), loaded into podman, and
an esi-federation container that the esi-cli tests talk to."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hack.client_issuer import FEDERATION_API_VERSION
from hack.sa_tokens import TokenIssuer
from images import build
from images.common import cache_dir
from images.containers import container_env
from tests.helpers_stack import (
    AUDIENCE,
    CLUSTER,
    NAMESPACE,
    SERVICE_ACCOUNT,
    STORE,
    authorization,
    fake_store,
    seed_values,
)
from tests.images.helpers_podman import (
    ARCHIVES,
    BUILD_TIMEOUT_S,
    HARDENING,
    HEALTHZ_PROBE,
    REPO_ROOT,
    UID,
    FederationContainer,
    Podman,
    RunningContainer,
    newest_input,
    shared_dir,
    tls_dir,
)


@pytest.fixture(scope="session")
def archives() -> dict[str, Path]:
    """The three OCI archives, built by ``python -m images.build`` when missing or stale."""
    paths = {name: ARCHIVES / f"{name}.tar" for name in build.NAMES}
    if any(not p.exists() or p.stat().st_mtime < newest_input() for p in paths.values()):
        done = subprocess.run(
            [sys.executable, "-m", "images.build"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return paths


@pytest.fixture(scope="session")
def podman() -> Podman:
    """podman with the private settings of the build."""
    return Podman(container_env(cache_dir()))


@pytest.fixture(scope="session")
def images(archives: dict[str, Path], podman: Podman) -> dict[str, str]:
    """Each archive loaded into podman: image name -> the reference it was loaded as."""
    loaded = {}
    for name, archive in archives.items():
        output = podman.ok("load", "--input", str(archive))
        references = [
            line.split("Loaded image:")[-1].strip() for line in output.splitlines() if "Loaded image" in line
        ]
        assert references, output
        loaded[name] = references[0]
    return loaded


@pytest.fixture
def detached(podman: Podman) -> Iterator[list[RunningContainer]]:
    """Start containers with ``start(podman, ...)``; each is removed (by id) after the test."""
    started: list[RunningContainer] = []
    yield started
    for container in started:
        podman.run("rm", "--force", "--time=2", container.id, timeout=60)


@pytest.fixture(scope="session")
def federation(
    images: dict[str, str], podman: Podman, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FederationContainer]:
    """esi-federation serving a fake store to a static-JWKS client cluster, inside --network none."""
    root = tmp_path_factory.mktemp("federation")
    tokens = TokenIssuer()
    values = seed_values()
    manifests = shared_dir(root / "manifests")
    federation_manifest = {
        "apiVersion": FEDERATION_API_VERSION,
        "kind": "KubernetesFederation",
        "metadata": {"name": CLUSTER},
        "spec": {
            "url": "https://client-cluster-alpha.invalid:6443",
            "issuer": tokens.issuer,
            "jwks": tokens.jwks(),
        },
    }
    store = fake_store(STORE, {"api-keys": {"service-a-token": values["service-a-token"]}})
    documents = [federation_manifest, store, authorization("alpha-monitoring", issuer=tokens.issuer)]
    (manifests / "federation.yaml").write_text(yaml.safe_dump_all(documents))
    (manifests / "federation.yaml").chmod(0o644)
    token_dir = shared_dir(root / "token")
    (token_dir / "token").write_text(tokens.mint(NAMESPACE, SERVICE_ACCOUNT, [AUDIENCE]))
    (token_dir / "token").chmod(0o644)
    tls = tls_dir(root / "tls")
    name = f"esi-test-federation-{uuid.uuid4().hex[:8]}"
    container_id = podman.ok(
        "run", "--detach", f"--name={name}", *HARDENING, "--network=none", f"--user={UID}",
        f"--volume={manifests}:/config:ro", f"--volume={tls}:/tls:ro", images["esi-federation"],
        "serve", "--manifests", "/config", "--bind", "127.0.0.1:8443", "--tls-cert", "/tls/tls.crt",
        "--tls-key", "/tls/tls.key", "--workers", "1", "--threads", "2",
    ).strip()  # fmt: skip
    container = RunningContainer(podman, container_id)
    try:
        container.wait_until("/opt/esi-federation/bin/python", "-c", HEALTHZ_PROBE)
        yield FederationContainer(container, tls, token_dir, values)
    finally:
        podman.run("rm", "--force", "--time=2", container_id, timeout=60)
