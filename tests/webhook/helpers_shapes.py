"""Pod shapes the webhook must handle, as the API server would send them (before defaulting)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

P = "esi.external-secrets.io/"
SEED_POD_FILE = Path(__file__).parents[2] / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"


def seed_pod() -> dict[str, Any]:
    """The seed's Prometheus pod, read from the example the docs show."""
    return yaml.safe_load(SEED_POD_FILE.read_text())


def pod(annotations: dict[str, str], *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A minimal pod in namespace ``apps`` with ``annotations`` and ``containers`` (one default one)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "apps", "annotations": dict(annotations)},
        "spec": {"containers": list(containers) or [container("app")], **spec},
    }


def container(name: str, **fields: Any) -> dict[str, Any]:
    """A container running ``/app`` unless ``command`` is given (``command=None`` leaves it out)."""
    result: dict[str, Any] = {"name": name, "image": f"registry.example/{name}:1", "command": ["/app"]}
    result.update(fields)
    return {key: value for key, value in result.items() if value is not None}


FILES = {P + "inject": "true", P + "store": "vault-prod", P + "file-token": "api-keys.service-a-token"}
ENV = {P + "inject": "true", P + "store": "vault-prod", P + "env-DB_PASSWORD": "db-credentials.password"}


def shapes() -> dict[str, dict[str, Any]]:
    """Every pod shape the invariants are checked on, by a name that says what is special about it."""
    native_sidecar = container("mesh-proxy", restartPolicy="Always")
    token_volume = {
        "name": "kube-api-access-abcde",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            ]
        },
    }
    result = {
        "seed prometheus pod": seed_pod(),
        "no volumes and no mounts at all": pod(FILES),
        "env mode only": pod(ENV),
        "existing init containers and volumes": pod(
            FILES,
            container("app", volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            initContainers=[container("migrate"), container("warm-cache")],
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
        "several containers with a containers selection": pod(
            {**ENV, **FILES, P + "containers": "web, worker"},
            container("web"),
            container("worker"),
            container("log-shipper", command=None),
        ),
        "an existing projected token": pod(
            FILES,
            container(
                "app", volumeMounts=[{"name": token_volume["name"], "mountPath": "/var/run/secrets/x"}]
            ),
            volumes=[token_volume],
        ),
        "a native sidecar already present": pod(FILES, initContainers=[native_sidecar]),
        "init first with a refresh sidecar": pod(
            {**FILES, P + "init-first": "true", P + "refresh-interval": "5m"},
            initContainers=[container("migrate")],
        ),
        "everything at once": pod(
            {
                **ENV,
                **FILES,
                P + "file-b.json": "other-store:config#raw.json",
                P + "secrets-dir": "/run/app/secrets",
                P + "file-mode": "0400",
                P + "refresh-interval": "90",
                P + "server": "https://esi-federation.cluster-main.example.com",
            },
            container("app", env=[{"name": "PLAIN", "value": "1"}], args=["--serve"]),
            securityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
        ),
        "annotation names that need escaping": pod({**FILES, "example.com/a~b": "x"}),
    }
    return copy.deepcopy(result)
