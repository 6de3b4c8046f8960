"""One provider per store, built on first use and reused until the store's configuration changes.

A provider is built from one configuration snapshot: the store's spec, every Secret or ConfigMap the spec
references (any ``{name, key[, namespace]}`` selector in it; a ConfigMap when the selector says
``type: ConfigMap``, as ESO's ``caProvider`` does) and, for a provider module that names them with
``served_secrets``, the Secrets it serves. It is rebuilt when any of these changes; otherwise its client
and its login are kept. Every call names the snapshot its request is decided under.
The ``vault`` provider is imported only when a Vault store is used, so hvac stays out of start-up.

``store_problem`` runs a provider's own validation, the one its factory runs before serving, so that
``esi-federation check`` reports offline exactly what a request would be refused with.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from federation.config.model import Configuration, KubeSecret, StoreConfig
from federation.config.references import referenced_secrets
from federation.errors import NotFound, StoreError
from federation.settings import Settings
from federation.stores.base import Provider

ProviderFactory = Callable[[StoreConfig, Configuration, Settings], Provider]
ServedSecrets = Callable[[StoreConfig, Configuration], Iterable[KubeSecret]]

PROVIDER_MODULES = {
    "fake": "federation.stores.fake",
    "kubernetes": "federation.stores.kubernetes",
    "vault": "federation.stores.vault",
}


def fingerprint(store: StoreConfig, config: Configuration) -> str:
    """A digest of everything a provider is built from: its spec, the Secrets it references or serves."""
    digest = hashlib.sha256(store.kind.encode())
    digest.update(json.dumps(store.spec, sort_keys=True).encode())
    for ref in sorted(referenced_secrets(store.spec), key=lambda r: (r.kind, r.namespace, r.name, r.key)):
        value = config.secret_value(ref)
        digest.update(f"|{ref.kind}/{ref.namespace}/{ref.name}/{ref.key}=".encode())
        digest.update(hashlib.sha256(value).digest() if value is not None else b"<absent>")
    served: ServedSecrets | None = getattr(_module(store), "served_secrets", None)
    for secret in served(store, config) if served is not None else ():
        digest.update(f"|{secret.namespace}/{secret.name}:".encode())
        for name, value in sorted(secret.data.items()):
            digest.update(f"{name}=".encode() + hashlib.sha256(value).digest())
    return digest.hexdigest()


def _module(store: StoreConfig) -> Any:
    return importlib.import_module(PROVIDER_MODULES[store.kind])


def store_problem(store: StoreConfig, config: Configuration, settings: Settings) -> str | None:
    """Why ``store`` cannot be served, in the words a request would be refused with; None if it can."""
    validate = _module(store).validate
    try:
        validate(store, config, settings)
    except StoreError as exc:
        return exc.detail
    return None


@dataclass
class _Built:
    fingerprint: str
    provider: Provider
    config: Configuration


class StoreRegistry:
    """Hands out the provider of a store, building it when needed."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[str, _Built] = {}
        self._lock = threading.Lock()

    def provider(self, config: Configuration, store_name: str) -> Provider:
        """The provider of ``store_name`` in ``config``; ``NotFound`` when ``config`` has no such store."""
        return self.built(config, store_name)[0]

    def built(self, config: Configuration, store_name: str) -> tuple[Provider, str]:
        """The provider of ``store_name`` in ``config`` and the ``fingerprint`` it was built from."""
        store = config.stores.get(store_name)
        if store is None:
            raise NotFound(f"ClusterSecretStore {store_name!r} does not exist")
        built = self._built.get(store_name)
        if built is not None and built.config is config:
            return built.provider, built.fingerprint  # the same snapshot: nothing can have changed
        wanted = fingerprint(store, config)
        with self._lock:
            built = self._built.get(store_name)
            if built is not None and built.fingerprint == wanted:
                built.config = config
                return built.provider, wanted
            if built is not None:
                built.provider.close()
            factory: ProviderFactory = _module(store).build
            provider = factory(store, config, self._settings)
            self._built[store_name] = _Built(wanted, provider, config)
            return provider, wanted

    def close(self) -> None:
        """Close every provider (server shutdown)."""
        with self._lock:
            for built in self._built.values():
                built.provider.close()
            self._built.clear()
