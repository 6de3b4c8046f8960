"""The generator resources (``generators.external-secrets.io/v1alpha1``) as frozen values, and parsing.

Generators are namespaced: a reference is ``{namespace, kind, name}``. The kinds served are
``Password``, ``UUID``, ``Fake`` and ``VaultDynamicSecret``; each kind's own module checks its spec when
the generator is built, so that a broken spec is reported with the field that is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GENERATOR_API = "generators.external-secrets.io/v1alpha1"
KINDS = ("Password", "UUID", "Fake", "VaultDynamicSecret")
# A Kubernetes name (DNS subdomain) and namespace (DNS label).
NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class GeneratorSpecError(ValueError):
    """A generator's spec cannot work; the message names the generator and the field."""


@dataclass(frozen=True, order=True)
class GeneratorRef:
    """Which generator: ``{namespace, kind, name}`` as an ``allowedGenerators`` entry names it."""

    namespace: str
    kind: str
    name: str

    def describe(self) -> str:
        """``Kind namespace/name``, for messages and audit lines."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def problem(self) -> str | None:
        """What is wrong with this reference as a caller wrote it, or None."""
        if not NAMESPACE.match(self.namespace):
            return f"generator namespace {self.namespace!r} is not a valid namespace"
        if not NAME.match(self.name):
            return f"generator name {self.name!r} is not a valid name"
        if self.kind not in KINDS:
            return f"generator kind {self.kind!r} is not served (served: {', '.join(KINDS)})"
        return None


@dataclass(frozen=True)
class GeneratorConfig:
    """One generator resource: its reference and its ``spec`` as written (a JSON-safe copy)."""

    ref: GeneratorRef
    spec: Mapping[str, Any] = field(default_factory=dict)


def parse_generator(resource: Mapping[str, Any]) -> GeneratorConfig:
    """The generator ``resource`` describes; ``GeneratorSpecError`` names what is missing or wrong."""
    meta = resource.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kind, name, namespace = resource.get("kind"), meta.get("name"), meta.get("namespace") or "default"
    where = f"{kind} {namespace}/{name}"
    if resource.get("apiVersion") != GENERATOR_API or kind not in KINDS:
        raise GeneratorSpecError(f"{where}: not a served generator (apiVersion {GENERATOR_API}, {KINDS})")
    if not isinstance(name, str) or not NAME.match(name):
        raise GeneratorSpecError(f"{where}: metadata.name must be a Kubernetes name")
    if not isinstance(namespace, str) or not NAMESPACE.match(namespace):
        raise GeneratorSpecError(f"{where}: metadata.namespace must be a Kubernetes namespace")
    spec = resource.get("spec", {})
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise GeneratorSpecError(f"{where}: spec must be a mapping")
    return GeneratorConfig(GeneratorRef(namespace, str(kind), name), json.loads(json.dumps(spec)))
