"""What the tests against the real API server share: the walkthrough's names and a served federation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from hack.certs import create_ca, write_tls_files
from hack.kube import ControlPlane
from hack.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FEDERATION_API_VERSION = "identity.federation.external-secrets.io/v1alpha1"


def kubernetes_federation(plane: ControlPlane, name: str, audiences: Sequence[str]) -> dict[str, Any]:
    """A KubernetesFederation registering ``plane`` (its URL, CA and issuer) as a client cluster."""
    return {
        "apiVersion": FEDERATION_API_VERSION,
        "kind": "KubernetesFederation",
        "metadata": {"name": name},
        "spec": {
            "url": plane.url,
            "caBundle": plane.ca_pem,
            "issuer": plane.issuer,
            "audiences": list(audiences),
        },
    }


def stored_pod(namespace: str, name: str, service_account: str) -> dict[str, Any]:
    """A pod to bind tokens to: the API server stores it, nothing ever runs it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": service_account,
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": "registry.invalid/app:1"}],
        },
    }


@dataclass
class ServedFederation:
    """A running ``esi-federation serve`` process over TLS on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str
    ca_file: Path
    stderr_path: Path

    def post_secrets(self, token: str, secrets: Sequence[Mapping[str, str]]) -> requests.Response:
        """POST /v1/secrets with ``token`` as the bearer."""
        return requests.post(
            self.url + "/v1/secrets",
            json={"secrets": list(secrets)},
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.ca_file),
            timeout=30,
        )

    def stderr(self) -> str:
        """Everything the server logged so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_federation(
    directory: Path, source_args: Sequence[str], extra_env: Mapping[str, str] | None = None
) -> Iterator[ServedFederation]:
    """``esi-federation serve`` with ``source_args`` (``--manifests DIR`` or ``--kubernetes ...``).

    One worker and a high rate limit unless ``source_args`` says otherwise (a later flag wins).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = create_ca("federation server test CA")
    tls = write_tls_files(directory / "tls", ca, ca.issue(["127.0.0.1"]))
    port = free_port()
    stderr_path = directory / "federation.log"
    command = [
        str(BIN / "esi-federation"),
        "serve",
        *("--bind", f"127.0.0.1:{port}", "--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)),
        *("--workers", "1", "--rate-limit", "1000"),
        *source_args,
    ]
    env = {**os.environ, **(extra_env or {})}
    with stderr_path.open("ab") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO, env=env)
    served = ServedFederation(process, f"https://127.0.0.1:{port}", tls.ca_file, stderr_path)
    try:
        wait_ready(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_ready(served: ServedFederation, timeout: float = 60.0) -> None:
    """Wait for /readyz 200 (the configuration is loaded); fail with the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(
                f"esi-federation exited {served.process.returncode}: {served.stderr()[-2000:]}"
            )
        try:
            if requests.get(served.url + "/readyz", verify=str(served.ca_file), timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"esi-federation not ready in {timeout:.0f} s: {served.stderr()[-2000:]}")


def write_manifests(directory: Path, documents: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``documents`` as one multi-document YAML file in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump_all(list(documents)), encoding="utf-8")
    return directory


# ESO's ClusterSecretStore CRD is another project's: the tests only need the kind to exist (the server
# lists it in Kubernetes mode, the examples create one), so this stand-in keeps ``spec`` unchecked.
CLUSTER_SECRET_STORE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clustersecretstores.external-secrets.io"},
    "spec": {
        "group": "external-secrets.io",
        "scope": "Cluster",
        "names": {
            "kind": "ClusterSecretStore",
            "listKind": "ClusterSecretStoreList",
            "plural": "clustersecretstores",
            "singular": "clustersecretstore",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def chart_crds() -> list[dict[str, Any]]:
    """The two CRDs the server chart ships under crds/."""
    from tests.charts.helpers_rendering import SERVER_CHART, crds  # noqa: PLC0415 - loads Helm's Go SDK

    return crds(SERVER_CHART)


def install_crds(plane: ControlPlane) -> list[dict[str, Any]]:
    """Create the chart's CRDs and the ClusterSecretStore stand-in; wait until each is Established."""
    from hack.kube.client import KubeError, create_object, wait_established  # noqa: PLC0415

    definitions = [*chart_crds(), CLUSTER_SECRET_STORE_CRD]
    stored = []
    for crd in definitions:
        try:
            create_object(plane, crd)
        except KubeError as exc:
            if exc.status != 409:
                raise
        stored.append(wait_established(plane, crd["metadata"]["name"]))
    return stored


def dropped_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of ``sent`` that ``stored`` lacks or holds differently (what the API server pruned/changed).

    Fields the API server adds (defaults, metadata) are fine: only what was sent is compared. An empty
    value sent (``[]``, ``{}``, ``""``, ``false``) may be missing from what is stored: the API server
    omits empty fields, and absent means the same.
    """
    if isinstance(sent, Mapping) and isinstance(stored, Mapping):
        problems = []
        for key, value in sent.items():
            if key in stored:
                problems += dropped_fields(value, stored[key], f"{path}.{key}")
            elif value not in (None, [], {}, "", False):
                problems.append(f"{path}.{key}")
        return problems
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [
            problem
            for index, (item, kept) in enumerate(zip(sent, stored, strict=True))
            for problem in dropped_fields(item, kept, f"{path}[{index}]")
        ]
    return [] if sent == stored else [path or "."]
