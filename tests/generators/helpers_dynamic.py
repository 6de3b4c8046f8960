"""A real OpenBao database secrets engine against a real PostgreSQL, and the federation parts around it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federation.config.model import Configuration, Federation, KubeSecret, SecretKeyRef
from federation.generators.issuance import Credentials
from federation.generators.leases import LocalLeaseStore, Owner
from federation.generators.model import GeneratorConfig, GeneratorRef
from federation.generators.registry import GeneratorRegistry
from federation.metrics import Metrics
from federation.settings import Settings
from hack.client_issuer import ClientClusterIssuer
from hack.kube import ControlPlane
from hack.kube.client import KubeError, create_object, ensure_service_account, request_token
from hack.openbao import OpenBao
from hack.postgres import Postgres

NAMESPACE = "apps"
ROLE_PREFIX = "v-"  # OpenBao's postgres plugin names the roles it makes v-<token>-<role>-...
CREATION = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


def configure_database_engine(bao: OpenBao, pg: Postgres) -> None:
    """``database/`` with a connection to ``pg`` and roles ``app`` (60 s leases) and ``short`` (4 s)."""
    client = bao.client()
    client.sys.enable_secrets_engine("database", path="database")
    client.write(
        "database/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=pg.template_url(),
        username="postgres",
        password=pg.password,
        allowed_roles=["app", "short"],
        verify_connection=True,
    )
    client.write(
        "database/roles/app", db_name="pg", default_ttl="60s", max_ttl="10m", creation_statements=[CREATION]
    )
    client.write(
        "database/roles/short", db_name="pg", default_ttl="4s", max_ttl="10m", creation_statements=[CREATION]
    )


def dynamic_roles(pg: Postgres) -> set[str]:
    """The roles OpenBao has made and not yet dropped."""
    return {role for role in pg.roles() if role.startswith(ROLE_PREFIX)}


def vault_generator(bao: OpenBao, name: str, path: str, **spec: object) -> GeneratorConfig:
    """A ``VaultDynamicSecret`` logging in with the root token held in Secret ``apps/bao-token``."""
    provider = {"server": bao.address, "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}}}
    return GeneratorConfig(
        GeneratorRef(NAMESPACE, "VaultDynamicSecret", name), {"provider": provider, "path": path, **spec}
    )


@dataclass
class Stack:
    """The configuration a server would hold, and the objects that issue and revoke."""

    bao: OpenBao
    cluster: ClientClusterIssuer
    state_dir: Path
    reviewer_token: str | None
    generators: dict[GeneratorRef, GeneratorConfig] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    settings: Settings = field(default_factory=Settings)

    def configuration(self) -> Configuration:
        secrets = {
            (NAMESPACE, "bao-token"): KubeSecret(
                NAMESPACE, "bao-token", {"token": self.bao.root_token.encode()}
            )
        }
        review_ref = None
        if self.reviewer_token is not None:
            review_ref = SecretKeyRef("reviewer", "esi-system", "token")
            secrets[("esi-system", "reviewer")] = KubeSecret(
                "esi-system", "reviewer", {"token": self.reviewer_token.encode()}
            )
        federation = Federation(
            "alpha",
            self.cluster.url,
            self.cluster.issuer,
            self.cluster.ca_pem,
            token_review_secret_ref=review_ref,
        )
        return Configuration(
            federations={"alpha": federation},
            secrets=secrets,
            source="test",
            generators=dict(self.generators),
        )

    def credentials(self) -> Credentials:
        """A fresh set of objects on the same state directory, as after a server restart."""
        registry = GeneratorRegistry(self.settings)
        return Credentials(registry, LocalLeaseStore(self.state_dir), self.metrics)

    def generators_ref(self, name: str) -> GeneratorRef:
        """The reference of an added generator."""
        (ref,) = [ref for ref in self.generators if ref.name == name]
        return ref

    def add(self, generator: GeneratorConfig) -> GeneratorRef:
        self.generators[generator.ref] = generator
        return generator.ref

    def pod(self, name: str) -> Owner:
        """A pod of the client cluster (it exists from now on) and the owner its token names."""
        self.cluster.mint(NAMESPACE, "web", ["esi-federation"], pod_name=name)
        uid = self.cluster.pod_uid(NAMESPACE, name)
        return Owner("alpha", f"system:serviceaccount:{NAMESPACE}:web", NAMESPACE, name, uid)


def secret_manifest(namespace: str, name: str, value: str) -> dict[str, Any]:
    """A ``v1 Secret`` holding ``value`` under ``token``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


def create_once(plane: ControlPlane, obj: Mapping[str, Any]) -> None:
    """Create ``obj`` on the real API server unless it exists (modules of one session share it)."""
    try:
        create_object(plane, obj)
    except KubeError as exc:
        if exc.status != 409:
            raise


def reviewer_token(plane: ControlPlane, namespace: str, name: str = "esi-reviewer") -> str:
    """A token of a ServiceAccount that may create TokenReviews and get pods, as docs/generators.md asks."""
    ensure_service_account(plane, namespace, name)
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    ]
    rbac = "rbac.authorization.k8s.io/v1"
    role = f"{namespace}-{name}"
    create_once(
        plane, {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": role}, "rules": rules}
    )
    create_once(
        plane,
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    return request_token(plane, namespace, name, None, expiration_seconds=3600)
