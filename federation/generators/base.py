"""What every generator returns, and the interface of generators whose credentials can be revoked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Lease:
    """A revocable credential's handle in its backend (a Vault lease) and its current term."""

    lease_id: str
    duration: float
    renewable: bool


@dataclass(frozen=True)
class Generated:
    """The generated map (property -> text) and, for revocable credentials, its lease."""

    data: Mapping[str, str] = field(repr=False)
    lease: Lease | None = None


class Generator(Protocol):
    """One generator resource, built once and reused until its spec changes."""

    def generate(self) -> Generated:
        """A new value; raises a ``FederationError`` (never with a value in its message)."""
        ...

    def close(self) -> None:
        """Release connections (the generator's spec changed, or the server stops)."""
        ...


@runtime_checkable
class LeaseKeeper(Protocol):
    """A generator whose credentials are leases: renewed while their owner lives, revoked after."""

    def renew(self, lease_id: str, increment: float) -> Lease:
        """Extend ``lease_id`` by ``increment`` seconds (the backend may grant less)."""
        ...

    def revoke(self, lease_id: str) -> None:
        """End ``lease_id`` now; revoking a lease that is already gone succeeds."""
        ...
