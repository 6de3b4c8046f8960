"""One generator object per generator resource, built on first use, rebuilt when its spec changes.

The ``vault`` client of a ``VaultDynamicSecret`` is kept between calls (its connections and its
login) until the generator's spec, or a Secret the spec references, changes. A generator module is
imported only when a generator of its kind is used, so hvac stays out of start-up.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from dataclasses import dataclass, replace

from federation.config.model import Configuration
from federation.config.references import referenced_secrets
from federation.errors import NotFound, StoreError
from federation.generators.base import Generator
from federation.generators.model import GeneratorConfig, GeneratorRef, GeneratorSpecError
from federation.settings import Settings

MODULES = {
    "Password": "federation.generators.password",
    "UUID": "federation.generators.uuids",
    "Fake": "federation.generators.fake",
    "VaultDynamicSecret": "federation.generators.vault_dynamic",
}


def fingerprint(generator: GeneratorConfig, config: Configuration) -> str:
    """A digest of the generator's spec and of every Secret it references (in its namespace)."""
    digest = hashlib.sha256(json.dumps(generator.spec, sort_keys=True).encode())
    for ref in sorted(referenced_secrets(generator.spec), key=lambda r: (r.namespace, r.name, r.key)):
        located = ref if ref.namespace else replace(ref, namespace=generator.ref.namespace)
        value = config.secret_value(located)
        digest.update(f"|{located.namespace}/{located.name}/{located.key}=".encode())
        digest.update(hashlib.sha256(value).digest() if value is not None else b"<absent>")
    return digest.hexdigest()


@dataclass
class _Built:
    fingerprint: str
    generator: Generator


class GeneratorRegistry:
    """Hands out the generator of a reference, building it when needed."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[GeneratorRef, _Built] = {}
        self._lock = threading.Lock()

    def generator(self, config: Configuration, ref: GeneratorRef) -> Generator:
        """The generator ``ref`` names in ``config``: ``NotFound`` when it does not exist, ``StoreError``
        when its spec cannot work."""
        generator = config.generators.get(ref)
        if generator is None:
            raise NotFound(f"{ref.describe()} does not exist")
        wanted = fingerprint(generator, config)
        with self._lock:
            built = self._built.get(ref)
            if built is not None and built.fingerprint == wanted:
                return built.generator
            if built is not None:
                built.generator.close()
                del self._built[ref]
            module = importlib.import_module(MODULES[ref.kind])
            try:
                made: Generator = module.build(generator, snapshot=config, settings=self._settings)
            except GeneratorSpecError as exc:
                raise StoreError(str(exc)) from None
            self._built[ref] = _Built(wanted, made)
            return made

    def close(self) -> None:
        """Close every generator (server shutdown)."""
        with self._lock:
            for built in self._built.values():
                built.generator.close()
            self._built.clear()
