"""Which Secrets (and ConfigMaps) a configuration references, read from specs and raw resources. Pure.

The Kubernetes source keeps only the Secrets a configuration references; the store registry rebuilds a
provider when one of them changes; ``check`` reports the ones that do not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from federation.config.model import CONFIG_MAP, SECRET, SecretKeyRef

ObjectKey = tuple[str, str]
IN_CLUSTER_HOSTS = frozenset(
    {"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
)


def referenced_secrets(spec: Mapping[str, Any]) -> Iterator[SecretKeyRef]:
    """Every key selector (``{name, key, namespace?}``) anywhere in a provider spec: a ConfigMap's when
    it says ``type: ConfigMap``, else a Secret's."""
    stack: list[Any] = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and isinstance(node.get("key"), str):
                kind = CONFIG_MAP if node.get("type") == CONFIG_MAP else SECRET
                yield SecretKeyRef(node["name"], str(node.get("namespace") or ""), node["key"], kind)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@dataclass(frozen=True)
class SecretSelection:
    """The Secrets the configuration references: by (namespace, name), and whole namespaces; and the
    ConfigMaps, by (namespace, name)."""

    names: frozenset[ObjectKey] = frozenset()
    namespaces: frozenset[str] = frozenset()
    config_maps: frozenset[ObjectKey] = frozenset()

    def wants(self, namespace: str, name: str, kind: str = SECRET) -> bool:
        """Whether the Secret (or ConfigMap) ``namespace/name`` is referenced."""
        if kind == CONFIG_MAP:
            return (namespace, name) in self.config_maps
        return namespace in self.namespaces or (namespace, name) in self.names


def referenced_selection(resources: Iterable[Mapping[str, Any]]) -> SecretSelection:
    """Every Secret that the federations, stores and generators among ``resources`` reference (read from raw
    resources, so that it works for a batch that does not parse, too)."""
    names: set[ObjectKey] = set()
    namespaces: set[str] = set()
    config_maps: set[ObjectKey] = set()
    for resource in resources:
        spec = resource.get("spec")
        if not isinstance(spec, dict):
            continue
        if resource.get("kind") == "KubernetesFederation":
            names.update(_federation_references(spec))
        elif resource.get("kind") == "ClusterSecretStore" and isinstance(spec.get("provider"), dict):
            for kind, provider in spec["provider"].items():
                if not isinstance(provider, dict):
                    continue
                for ref in referenced_secrets(provider):
                    if ref.namespace:
                        (config_maps if ref.kind == CONFIG_MAP else names).add((ref.namespace, ref.name))
                if kind == "kubernetes" and points_at_cluster_main(provider):
                    namespaces.add(str(provider.get("remoteNamespace") or "default"))
        elif resource.get("kind") == "VaultDynamicSecret" and isinstance(spec.get("provider"), dict):
            for ref in _generator_references(resource, spec["provider"]):
                (config_maps if ref.kind == CONFIG_MAP else names).add((ref.namespace, ref.name))
    return SecretSelection(frozenset(names), frozenset(namespaces), frozenset(config_maps))


def _federation_references(spec: Mapping[str, Any]) -> list[ObjectKey]:
    """The Secrets of a federation's ``tokenSecretRef`` and ``tokenReview.tokenSecretRef``."""
    review = spec.get("tokenReview")
    refs = (spec.get("tokenSecretRef"), review.get("tokenSecretRef") if isinstance(review, dict) else None)
    return [
        (str(ref["namespace"]), str(ref["name"]))
        for ref in refs
        if isinstance(ref, dict) and ref.get("namespace") and ref.get("name")
    ]


def _generator_references(resource: Mapping[str, Any], provider: Mapping[str, Any]) -> list[SecretKeyRef]:
    """A generator's Secret references, in its own namespace (any other one is refused when parsed)."""
    metadata = resource.get("metadata")
    own = str((metadata if isinstance(metadata, dict) else {}).get("namespace") or "default")
    return [ref if ref.namespace else replace(ref, namespace=own) for ref in referenced_secrets(provider)]


def points_at_cluster_main(spec: Mapping[str, Any]) -> bool:
    """Whether a ``kubernetes`` provider spec reads cluster-main (no ``server.url``, or an in-cluster one)."""
    server = spec.get("server")
    url = server.get("url") if isinstance(server, dict) else None
    if url is None:
        return True
    if not isinstance(url, str):
        return False
    return urlsplit(url if "//" in url else f"https://{url}").hostname in IN_CLUSTER_HOSTS
