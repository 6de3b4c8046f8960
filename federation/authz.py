"""Authorization: deny unless a grant covers the request (DESIGN §6.7). Pure: no I/O.

A grant covers a requested item when it names the federation that verified the token, the token's
issuer and subject exactly, the item's store, and (when ``allowedSecrets`` is set) a glob that matches
the item's key. Globs follow ``fnmatch``: ``*`` matches any characters, ``/`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from federation.config.model import Grant
from federation.tokens import Identity


@dataclass(frozen=True)
class RequestedItem:
    """One secret asked for: a store, a key, and optionally a property."""

    store: str
    key: str
    property: str | None = None

    def describe(self) -> str:
        """``store:key`` or ``store:key#property``, for messages."""
        return f"{self.store}:{self.key}" + (f"#{self.property}" if self.property is not None else "")


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
    """Whether ``grant`` lets its subject read ``item``."""
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
