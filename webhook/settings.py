"""The webhook's configuration: one frozen object, built from flags or environment, checked at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import cached_property

from cli.errors import UsageError
from cli.serverurl import split_server_url
from webhook.errors import ConfigurationError

ALWAYS_EXCLUDED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# Kubernetes refuses a projected token that lives shorter than ten minutes or longer than 2**32 s.
MIN_TOKEN_EXPIRATION = 600
MAX_TOKEN_EXPIRATION = 2**32

# A Kubernetes resource quantity as the API server accepts it in the forms people write.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


@dataclass(frozen=True)
class ContainerDefaults:
    """Resources and identity of the containers the webhook injects (esi-init, esi-refresh)."""

    cpu_request: str = "10m"
    memory_request: str = "32Mi"
    cpu_limit: str = "200m"
    memory_limit: str = "128Mi"
    run_as_user: int = 65532
    run_as_group: int = 65532
    image_pull_policy: str = "IfNotPresent"


@dataclass(frozen=True)
class Settings:
    """Everything the webhook needs to mutate a pod; validated by :meth:`validate` before use."""

    cluster_name: str
    server_url: str | None = None
    allowed_server_urls: frozenset[str] = frozenset()
    server_ca_pem: str | None = None
    audience: str = "esi-federation"
    init_image: str = "ghcr.io/esi-federation/esi-init:0.1.0"
    token_expiration: int = 600
    excluded_namespaces: frozenset[str] = ALWAYS_EXCLUDED_NAMESPACES
    containers: ContainerDefaults = field(default_factory=ContainerDefaults)
    secrets_size_limit: str = "4Mi"
    bin_size_limit: str = "128Mi"
    max_body_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        # The system namespaces stay excluded whatever the flags say.
        object.__setattr__(
            self, "excluded_namespaces", frozenset(self.excluded_namespaces) | ALWAYS_EXCLUDED_NAMESPACES
        )
        # URLs are compared as text: "https://host/" and "https://host" name the same server.
        object.__setattr__(
            self, "allowed_server_urls", frozenset(url.rstrip("/") for url in self.allowed_server_urls)
        )
        if self.server_url is not None:
            object.__setattr__(self, "server_url", self.server_url.rstrip("/"))
        self.validate()

    @cached_property
    def permitted_server_urls(self) -> frozenset[str]:
        """Federation URLs a pod may name: the allow-list plus ``--server-url`` itself (computed once)."""
        if self.server_url:
            return self.allowed_server_urls | {self.server_url}
        return self.allowed_server_urls

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first unusable setting."""
        if not self.cluster_name.strip():
            raise ConfigurationError("--cluster-name is required: esi-cli sends it to the federation server")
        if not self.server_url and not self.allowed_server_urls:
            raise ConfigurationError(
                "set --server-url (or --allowed-server-urls): no federation server known"
            )
        for url in sorted(self.permitted_server_urls):
            # esi-cli reads it in every injected pod: a URL it refuses would fail each esi-init.
            try:
                split_server_url(url)
            except UsageError as exc:
                raise ConfigurationError(f"federation {exc.message}") from None
        if not self.audience.strip():
            raise ConfigurationError("--audience must not be empty")
        if not MIN_TOKEN_EXPIRATION <= self.token_expiration <= MAX_TOKEN_EXPIRATION:
            raise ConfigurationError(
                f"--token-expiration must be between {MIN_TOKEN_EXPIRATION} and {MAX_TOKEN_EXPIRATION} s"
            )
        if not self.init_image.strip():
            raise ConfigurationError("--init-image must not be empty")
        if self.server_ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in self.server_ca_pem:
            raise ConfigurationError("--server-ca-file holds no PEM certificate")
        quantities = {
            "secrets volume size limit": self.secrets_size_limit,
            "bin volume size limit": self.bin_size_limit,
        }
        quantities.update(
            {
                item.name.replace("_", "-"): getattr(self.containers, item.name)
                for item in fields(self.containers)
                if item.name.startswith(("cpu", "memory"))
            }
        )
        for name, quantity in quantities.items():
            if not _QUANTITY.match(quantity):
                raise ConfigurationError(
                    f"{name} {quantity!r} is not a Kubernetes quantity such as 64Mi or 100m"
                )
        if self.containers.run_as_user <= 0 or self.containers.run_as_group < 0:
            raise ConfigurationError("--init-run-as-user must be a non-root user id (1 or more)")
        if self.max_body_bytes <= 0:
            raise ConfigurationError("the body size cap must be positive")
