"""The in-memory configuration: what every request is decided against.

Local mode (a manifests directory) and Kubernetes mode (list and watch) both produce a
``Configuration`` through ``config.parse``; the rest of the server never knows which one did.
Every object is frozen, so a configuration can be swapped atomically while requests read the old one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.generators.model import GeneratorConfig, GeneratorRef

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"


SECRET = "Secret"  # noqa: S105 - a kind, not a password
CONFIG_MAP = "ConfigMap"


@dataclass(frozen=True)
class SecretKeyRef:
    """``{name, namespace, key}`` of a Kubernetes Secret (or, with ``kind`` ConfigMap, of a ConfigMap)
    on cluster-main."""

    name: str
    namespace: str
    key: str
    kind: str = SECRET

    def describe(self) -> str:
        """Human-readable location, for error messages (never the value)."""
        return f"{self.kind} {self.namespace}/{self.name} key {self.key!r}"


@dataclass(frozen=True)
class Federation:
    """A registered client cluster (``KubernetesFederation``)."""

    name: str
    url: str
    issuer: str = DEFAULT_ISSUER
    ca_bundle: str | None = None
    jwks_url: str | None = None
    static_jwks: Mapping[str, Any] | None = None
    audiences: tuple[str, ...] = ()
    token_secret_ref: SecretKeyRef | None = None
    token_review_secret_ref: SecretKeyRef | None = None

    @property
    def effective_jwks_url(self) -> str:
        """Where the key set is fetched from, unless ``static_jwks`` is set."""
        return self.jwks_url or self.url.rstrip("/") + "/openid/v1/jwks"


@dataclass(frozen=True)
class Grant:
    """An ``Authorization``: a subject of one federation may read some stores (and keys)."""

    name: str
    federation: str
    issuer: str
    subject: str
    stores: frozenset[str]
    secret_patterns: tuple[str, ...] | None = None
    generators: frozenset[GeneratorRef] = frozenset()
    generator_state_namespaces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StoreConfig:
    """A ``ClusterSecretStore``: its provider kind and that provider's spec, as written."""

    name: str
    kind: str
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class KubeSecret:
    """A ``v1 Secret`` (or ``v1 ConfigMap``) of cluster-main, decoded; referenced by stores and
    federations."""

    namespace: str
    name: str
    data: Mapping[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class Configuration:
    """Everything the server decides against, loaded as one consistent snapshot."""

    federations: Mapping[str, Federation] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    stores: Mapping[str, StoreConfig] = field(default_factory=dict)
    secrets: Mapping[tuple[str, str], KubeSecret] = field(default_factory=dict)
    source: str = "empty"
    config_maps: Mapping[tuple[str, str], KubeSecret] = field(default_factory=dict)
    # Resources of our API groups that were not loaded, each with the reason: ``check`` reports them as
    # problems, a reload logs them.
    ignored: tuple[str, ...] = ()
    # Shapes that are loaded but will go away (ESI's older group, ``subject`` without ``oidc``).
    deprecated: tuple[str, ...] = ()
    generators: Mapping[GeneratorRef, GeneratorConfig] = field(default_factory=dict)

    def secret_value(self, ref: SecretKeyRef) -> bytes | None:
        """Return the bytes at ``ref`` (a Secret's or a ConfigMap's, after ``ref.kind``), or None when
        the object or the key is absent."""
        held = self.config_maps if ref.kind == CONFIG_MAP else self.secrets
        secret = held.get((ref.namespace, ref.name))
        return None if secret is None else secret.data.get(ref.key)
