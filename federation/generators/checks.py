"""Offline checks of a generator's spec, for loading a configuration and for ``esi-federation check``.

Everything that can be judged without the network or the referenced Secrets is judged here, so that a
broken generator is reported when the manifests are loaded, not at a pod's first request.
"""

from __future__ import annotations

from federation.generators import fake, password, vault_dynamic
from federation.generators.model import GeneratorConfig, GeneratorSpecError


def spec_problem(config: GeneratorConfig) -> str | None:
    """What is wrong with ``config``'s spec, or None."""
    where = config.ref.describe()
    try:
        if config.ref.kind == "Password":
            password.parse_spec(where, config.spec)
        elif config.ref.kind == "Fake":
            fake.parse_data(config)
        elif config.ref.kind == "VaultDynamicSecret":
            vault_dynamic.parse_spec(where, config.spec)
            vault_dynamic.provider_store(config)
    except GeneratorSpecError as exc:
        return str(exc)
    return None
