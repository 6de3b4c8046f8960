"""Render the two charts with Helm's own Go SDK (helm-python-sdk) and read the result as Kubernetes objects.

``lookup`` returns nothing in an offline render, so the Helm-generated TLS material is fresh on each render.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml
from helm_python import _native as helm_native

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_CHART = REPO_ROOT / "charts" / "esi-webhook"
SERVER_CHART = REPO_ROOT / "charts" / "esi-federation-server"
RELEASE_NAMESPACE = "esi-system"

# The one value the webhook chart cannot default: the name of this cluster's KubernetesFederation.
WEBHOOK_REQUIRED_VALUES: dict[str, Any] = {"federation": {"clusterName": "client-cluster-alpha"}}

# Kinds of other projects' CRDs (cert-manager, prometheus-operator): kubernetes-validate has no schema.
FOREIGN_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

# An option line of argparse's help: "  --bind HOST:PORT  help", "  -h, --help  help", "  --kubernetes  help".
# A single space after the flag introduces its value's name; two or more start the help text.
_FLAG = re.compile(r"^\s*(?:-\w, )?(--[a-z][a-z0-9-]*)(?: (?! )(\S+))?", re.MULTILINE)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two values dicts; ``override`` wins."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@contextmanager
def loaded(chart_dir: Path) -> Iterator[helm_python.Chart]:
    """The chart at ``chart_dir``, released again afterwards."""
    chart = helm_python.Chart.load(str(chart_dir))
    try:
        yield chart
    finally:
        chart.close()


def render_files(
    chart_dir: Path,
    values: Mapping[str, Any] | None = None,
    release: str = "esi",
    kube_version: str | None = None,
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template [--kube-version]`` (an install) would produce it.

    Without ``kube_version``, ``.Capabilities.KubeVersion`` is Helm's default (its client-go's version).
    """
    return dict(_rendered(chart_dir, json.dumps(values or {}, sort_keys=True), release, kube_version))


@functools.cache
def _rendered(
    chart_dir: Path, values_json: str, release: str, kube_version: str | None
) -> tuple[tuple[str, str], ...]:
    # Each render generates keys for the TLS Secret (up to a second on a busy machine), and many
    # tests look at the same values: render each combination once per test process.
    options: dict[str, Any] = {
        "name": release,
        "namespace": RELEASE_NAMESPACE,
        "is_install": True,
        "revision": 1,
    }
    with loaded(chart_dir) as chart:
        if kube_version is None:
            files = chart.render(json.loads(values_json), **options)
        else:
            # Chart.render has no kube_version parameter; the native call it wraps takes the option.
            options["kube_version"] = kube_version
            rendered = helm_native.call_string("helm_render", chart._raw(), values_json, json.dumps(options))
            files = json.loads(rendered)
    return tuple(sorted(files.items()))


def render(
    chart_dir: Path,
    values: Mapping[str, Any] | None = None,
    release: str = "esi",
    kube_version: str | None = None,
) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders (NOTES.txt left out)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_files(chart_dir, values, release, kube_version).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(chart_dir: Path, values: Mapping[str, Any] | None = None) -> str:
    """The rendered NOTES.txt."""
    files = render_files(chart_dir, values)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def crds(chart_dir: Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions under the chart's ``crds/``."""
    with loaded(chart_dir) as chart:
        return [yaml.safe_load(entry["data"]) for entry in chart.crds]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of ``kind``; fails when there are none or several."""
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    """The kinds rendered, sorted."""
    return sorted(obj["kind"] for obj in objects)


def validate_strict(obj: dict[str, Any], kube_version: str) -> None:
    """Validate ``obj`` against the Kubernetes schema of ``kube_version``; strict: no unknown fields."""
    kubernetes_validate.validate(obj, kube_version, strict=True)


def cli_flags(program: str, *subcommand: str) -> dict[str, bool]:
    """Flags that ``program subcommand --help`` lists, mapped to whether each takes a value."""
    executable = Path(sys.executable).parent / program
    command = [str(executable)] if executable.exists() else [shutil.which(program) or program]
    result = subprocess.run(
        [*command, *subcommand, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{program} {' '.join(subcommand)} --help failed: {result.stderr[-500:]}"
    return {flag: bool(metavar) for flag, metavar in _FLAG.findall(result.stdout)}


def unaccepted_args(args: list[str], flags: Mapping[str, bool]) -> list[str]:
    """The parts of a ``serve`` command line that the CLI's flags do not account for."""
    problems: list[str] = []
    rest = list(args[1:])
    while rest:
        arg = rest.pop(0)
        flag = arg.split("=", 1)[0]
        if flag not in flags:
            problems.append(f"unknown {arg}")
        elif flags[flag] and "=" not in arg:
            if not rest or rest[0].startswith("--"):
                problems.append(f"{flag} lacks its value")
            else:
                rest.pop(0)
    return problems


def webhook_variants(ca_pem: str) -> dict[str, dict[str, Any]]:
    """Values of the webhook chart worth rendering: each TLS source and every optional object."""
    variants: dict[str, dict[str, Any]] = {
        "default": {},
        "cert-manager-self-signed": {"tls": {"certManager": {"enabled": True}}},
        "cert-manager-issuer": {
            "tls": {
                "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}
            }
        },
        "existing-secret": {"tls": {"existingSecret": "webhook-tls", "caBundle": ca_pem}},
        "everything-optional": {
            "federation": {
                "serverCA": ca_pem,
                "allowedServerURLs": ["https://esi-federation-dr.cluster-main.example.com"],
            },
            "webhook": {
                "failurePolicy": "Ignore",
                "excludedNamespaces": ["istio-system"],
                "namespaceOptIn": {"enabled": True},
            },
            "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
            "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {}}]},
            "priorityClassName": "system-cluster-critical",
            "imagePullSecrets": [{"name": "registry"}],
        },
        "match-conditions": {"webhook": {"podSelection": "matchConditions"}},
        "object-selector": {"webhook": {"podSelection": "objectSelector"}},
        "all-pods": {"webhook": {"podSelection": "all"}},
        "host-network": {
            "hostNetwork": True,
            "containerPort": 9443,
            "webhook": {"annotations": {"argocd.argoproj.io/sync-wave": "1"}, "labels": {"team": "platform"}},
        },
    }
    return {name: merge(WEBHOOK_REQUIRED_VALUES, values) for name, values in variants.items()}


SERVER_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager-self-signed": {"tls": {"certManager": {"enabled": True}}},
    "cert-manager-issuer": {
        "tls": {
            "certManager": {"enabled": True, "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}
        }
    },
    "existing-secret": {"tls": {"existingSecret": "federation-tls"}},
    "everything-optional": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "public-tls", "hosts": ["esi-federation.cluster-main.example.com"]}],
        },
        "autoscaling": {"enabled": True},
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "dashboard": {"enabled": True, "annotations": {"grafana_folder": "ESI"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        },
        "service": {"annotations": {"example.com/owner": "platform"}},
        "networkPolicy": {
            "enabled": True,
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}],
            "egress": [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
        },
    },
}
