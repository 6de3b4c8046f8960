"""Credentials a store spec points at: ``{name, namespace, key}`` selectors read out of the snapshot.

Shared by the providers (vault auth methods, ``tls``; the kubernetes provider's ``auth``): every selector
of a ClusterSecretStore names its namespace, and a value is trimmed text. No message holds a value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from federation.config.model import Configuration, SecretKeyRef
from federation.errors import StoreError


class SecretReader:
    """Reads referenced Secrets from the configuration snapshot the provider is built from."""

    def __init__(self, where: str, snapshot: Configuration) -> None:
        self._where = where
        self._snapshot = snapshot

    def reader(self, node: Any, field: str) -> Callable[[], str]:
        """A function that returns the value of the selector ``node`` (the selector is checked now)."""
        return functools.partial(self.text, self.ref(node, field))

    def ref(self, node: Any, field: str) -> SecretKeyRef:
        """A ``{name, namespace, key}`` selector; a ClusterSecretStore must name the namespace."""
        if not isinstance(node, dict):
            raise StoreError(f"{self._where}: {field} is required ({{name, namespace, key}})")
        parts = {part: node.get(part) for part in ("name", "namespace", "key")}
        missing = [part for part, value in parts.items() if not isinstance(value, str) or not value]
        if missing:
            raise StoreError(
                f"{self._where}: {field} needs {', '.join(missing)} (a ClusterSecretStore names the "
                "namespace of every Secret it references)"
            )
        return SecretKeyRef(str(parts["name"]), str(parts["namespace"]), str(parts["key"]))

    def text(self, ref: SecretKeyRef) -> str:
        """The referenced value as text, without surrounding whitespace."""
        value = self._snapshot.secret_value(ref)
        if value is None:
            raise StoreError(f"{self._where}: {ref.describe()} does not exist")
        try:
            text = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise StoreError(f"{self._where}: {ref.describe()} is not UTF-8 text") from None
        if not text:
            raise StoreError(f"{self._where}: {ref.describe()} is empty")
        return text


def client_certificate(
    where: str, secrets: SecretReader, cert: tuple[Any, str], key: tuple[Any, str]
) -> tuple[bytes, bytes]:
    """The PEM certificate and PEM key that two selectors point at (read now)."""
    cert_pem = secrets.text(secrets.ref(*cert)).encode()
    key_pem = secrets.text(secrets.ref(*key)).encode()
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise StoreError(f"{where}: {cert[1]} holds no PEM certificate")
    if b"PRIVATE KEY-----" not in key_pem:
        raise StoreError(f"{where}: {key[1]} holds no PEM private key")
    return cert_pem, key_pem
