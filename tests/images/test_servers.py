"""The esi-federation and esi-webhook images run hardened: read-only root, no network, non-root uid.

With ``--network none`` nothing outside a container can reach it, so the clients run inside: the
image's own Python (urllib over TLS, verifying the test CA) probes the server on the container's
loopback through ``podman exec``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from hack.admission import pod_create_review
from images.common import ROOT as REPO_ROOT
from tests.images.helpers_podman import (
    ARBITRARY_UID,
    BUILD_TIMEOUT_S,
    HARDENING,
    HEALTHZ_PROBE,
    FederationContainer,
    Podman,
    RunningContainer,
    start,
    tls_dir,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("images"), pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]

PYTHON = "/opt/esi-federation/bin/python"
MUTATE_PROBE = (
    "import ssl, sys, urllib.request\n"
    "context = ssl.create_default_context(cafile='/tls/ca.crt')\n"
    "request = urllib.request.Request('https://127.0.0.1:8443/mutate', data=sys.stdin.buffer.read(),\n"
    "                                 headers={'Content-Type': 'application/json'})\n"
    "sys.stdout.write(urllib.request.urlopen(request, context=context, timeout=10).read().decode())\n"
)


def test_the_federation_image_serves_healthz_over_tls(federation: FederationContainer) -> None:
    done = federation.container.exec(PYTHON, "-c", HEALTHZ_PROBE)

    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("200 ")


@pytest.mark.parametrize("uid", ["65532", ARBITRARY_UID])
def test_the_federation_image_checks_the_examples(images: dict[str, str], podman: Podman, uid: str) -> None:
    examples = REPO_ROOT / "examples" / "cluster-main"

    done = podman.hardened(
        images["esi-federation"], "check", "--manifests", "/config", uid=uid,
        options=[f"--volume={examples}:/config:ro"],
    )  # fmt: skip

    assert done.exit_code == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 1 federations, 1 authorizations, 1 stores")


def test_the_webhook_image_mutates_a_real_admission_review(
    images: dict[str, str], podman: Podman, detached: list[RunningContainer], tmp_path: Path
) -> None:
    tls = tls_dir(tmp_path / "tls")
    webhook = start(
        detached, podman, *HARDENING, "--network=none", f"--user={ARBITRARY_UID}", f"--volume={tls}:/tls:ro",
        images["esi-webhook"],
        "serve", "--bind", "127.0.0.1:8443", "--tls-cert", "/tls/tls.crt", "--tls-key", "/tls/tls.key",
        "--server-url", "https://esi-federation.cluster-main.example.com",
        "--cluster-name", "client-cluster-alpha",
        "--workers", "1", "--threads", "2",
    )  # fmt: skip
    webhook.wait_until(PYTHON, "-c", HEALTHZ_PROBE)
    pod = yaml.safe_load(
        (REPO_ROOT / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml").read_text()
    )
    review = pod_create_review(pod)

    done = webhook.exec(PYTHON, "-c", MUTATE_PROBE, stdin=json.dumps(review))

    assert done.exit_code == 0, done.stderr + webhook.logs()[-2000:]
    response = json.loads(done.stdout)["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    added = json.dumps(patch)
    assert f'"{images["esi-init"]}"' in added  # the webhook's default esi-init is the archive's image
    assert "/esi/bin/esi-cli" in added
