"""ESO's ``kubernetes`` provider: Secrets of cluster-main, from the same source as the CRs.

key = the Secret's name in ``remoteNamespace`` (default ``default``); property = a data key.
The provider reads the configuration in force at each call, so a changed Secret is served at once.
"""

from __future__ import annotations

from collections.abc import Callable

from federation.config.model import Configuration, StoreConfig
from federation.errors import SecretNotFound, StoreError
from federation.settings import Settings
from federation.stores.base import SecretData


class KubernetesProvider:
    """Reads Secrets of one namespace out of the current configuration."""

    def __init__(self, namespace: str, current: Callable[[], Configuration]) -> None:
        self._namespace = namespace
        self._current = current

    def read(self, key: str) -> SecretData:
        """Return the Secret ``key`` as a map of its data keys to text."""
        secret = self._current().secrets.get((self._namespace, key))
        if secret is None:
            raise SecretNotFound(f"key {key!r} does not exist")
        try:
            return {name: value.decode("utf-8") for name, value in secret.data.items()}
        except UnicodeDecodeError:
            raise StoreError(f"Secret {self._namespace}/{key} holds data that is not UTF-8 text") from None

    def close(self) -> None:
        """Nothing to release."""


def build(store: StoreConfig, current: Callable[[], Configuration], settings: Settings) -> KubernetesProvider:
    """Provider factory (see ``stores.registry``)."""
    namespace = store.spec.get("remoteNamespace") or "default"
    return KubernetesProvider(str(namespace), current)
