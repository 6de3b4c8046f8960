"""Authorization: deny unless a grant covers the request. Pure: no I/O.

A grant covers a requested item when it names the federation that verified the token, the token's
issuer and subject exactly, the item's store, and (when ``allowedSecrets`` is set) a glob that matches
the item's key. Globs follow ``fnmatch``: ``*`` matches any characters, ``/`` included. A generator
item is covered when the grant's ``allowedGenerators`` names that exact ``{namespace, kind, name}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from federation.config.model import Grant
from federation.generators.model import GeneratorRef
from federation.tokens import Identity


@dataclass(frozen=True)
class RequestedItem:
    """One value asked for: a store's key (and optionally a property), or a generator's output."""

    store: str
    key: str
    property: str | None = None
    generator: GeneratorRef | None = None

    @classmethod
    def of_generator(cls, ref: GeneratorRef, prop: str | None = None) -> RequestedItem:
        """An item asking ``ref`` to generate (optionally one ``prop`` of the generated map)."""
        return cls("", "", prop, ref)

    def describe(self) -> str:
        """``store:key``, ``store:key#property`` or ``generator Kind namespace/name[#property]``."""
        where = f"generator {self.generator.describe()}" if self.generator else f"{self.store}:{self.key}"
        return where + (f"#{self.property}" if self.property is not None else "")


def grants_of(identity: Identity, grants: Iterable[Grant]) -> list[Grant]:
    """The grants that apply to ``identity``: same federation, issuer and subject."""
    return [
        grant
        for grant in grants
        if grant.federation == identity.federation
        and grant.issuer == identity.issuer
        and grant.subject == identity.subject
    ]


def covers(grant: Grant, item: RequestedItem) -> bool:
    """Whether ``grant`` lets its subject read ``item`` (or, for a generator item, generate it)."""
    if item.generator is not None:
        return item.generator in grant.generators
    if item.store not in grant.stores:
        return False
    if grant.secret_patterns is None:
        return True
    return any(fnmatchcase(item.key, pattern) for pattern in grant.secret_patterns)


def denied_items(
    identity: Identity, grants: Iterable[Grant], items: Sequence[RequestedItem]
) -> list[RequestedItem]:
    """The requested items no grant of ``identity`` covers (empty: everything is allowed)."""
    applicable = grants_of(identity, grants)
    return [item for item in items if not any(covers(grant, item) for grant in applicable)]


def may_revoke_states(identity: Identity, grants: Iterable[Grant], namespace: str) -> bool:
    """Whether ``identity`` may revoke others' generated credentials in ``namespace``
    (``allowedGeneratorStates``)."""
    return any(namespace in grant.generator_state_namespaces for grant in grants_of(identity, grants))
