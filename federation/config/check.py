"""``esi-federation check``: problems a configuration parses with but cannot work with."""

from __future__ import annotations

from collections.abc import Callable

from federation.config.model import Configuration, StoreConfig
from federation.config.references import referenced_secrets
from federation.keyset import JwksError, parse_jwks

StoreProblem = Callable[[StoreConfig, Configuration], str | None]
"""Why a store cannot be served, in the words a request would be refused with (None: it can be).

The store providers know; ``federation.stores.registry.store_problem`` is the one the server passes in,
so that this module stays free of the providers' clients.
"""


def find_problems(config: Configuration, store_problem: StoreProblem) -> list[str]:
    """Every problem of ``config``, each naming the resource and what to change.

    Resources of our groups that were not loaded (``config.ignored``) are problems too; deprecated
    shapes are not (see ``config.deprecated``).
    """
    return (
        list(config.ignored)
        + _grant_problems(config)
        + _federation_problems(config)
        + _store_problems(config, store_problem)
    )


def _grant_problems(config: Configuration) -> list[str]:
    problems = []
    for grant in config.grants:
        where = f"Authorization {grant.name}"
        federation = config.federations.get(grant.federation)
        if federation is None:
            missing = grant.federation
            problems.append(
                f"{where}: federationRef names KubernetesFederation {missing!r}, which does not exist"
            )
        elif federation.issuer != grant.issuer:
            problems.append(
                f"{where}: subject.oidc.issuer {grant.issuer!r} is not the issuer of KubernetesFederation "
                f"{federation.name} ({federation.issuer!r}); the grant can never match"
            )
        for store in sorted(grant.stores - set(config.stores)):
            problems.append(f"{where}: allowedClusterSecretStores names {store!r}, which does not exist")
    return problems


def _federation_problems(config: Configuration) -> list[str]:
    problems = []
    owners: dict[str, list[str]] = {}
    for federation in config.federations.values():
        where = f"KubernetesFederation {federation.name}"
        if federation.static_jwks is not None:
            try:
                keys = parse_jwks(federation.static_jwks)
            except JwksError as exc:
                problems.append(f"{where}: spec.jwks: {exc}")
                keys = {}
            if not keys and federation.static_jwks.get("keys"):
                problems.append(f"{where}: spec.jwks holds no usable signing key")
            for key in keys.values():
                owners.setdefault(key.thumbprint, []).append(federation.name)
        for field, ref in (
            ("tokenSecretRef", federation.token_secret_ref),
            ("tokenReview", federation.token_review_secret_ref),
        ):
            if ref is not None and config.secret_value(ref) is None:
                problems.append(f"{where}: {field} points at {ref.describe()}, which does not exist")
    for names in owners.values():
        if len(names) > 1:
            problems.append(
                f"KubernetesFederations {', '.join(sorted(names))} publish the same key; it is refused in all"
            )
    return problems


def _store_problems(config: Configuration, store_problem: StoreProblem) -> list[str]:
    problems = []
    for store in config.stores.values():
        where = f"ClusterSecretStore {store.name}"
        found = []
        for ref in referenced_secrets(store.spec):
            if not ref.namespace:
                found.append(f"{where}: the reference to {ref.kind} {ref.name!r} needs a namespace")
            elif config.secret_value(ref) is None:
                found.append(f"{where}: {ref.describe()} does not exist")
        # The provider's own validation would repeat a missing reference; it runs once they are all there.
        problem = None if found else store_problem(store, config)
        problems.extend(found or ([f"{where}: cannot be served: {problem}"] if problem else []))
    return problems
