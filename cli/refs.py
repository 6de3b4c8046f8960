"""Secret references: ``[store:]key[.property]``, or ``[store:]key#property``.

This module is shared with the webhook, which validates annotations with it, so that the webhook and
esi-cli can never disagree on what a reference means. It imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReferenceError(ValueError):
    """A reference that cannot be parsed; the message names the reference and the problem."""


@dataclass(frozen=True)
class SecretRef:
    """One secret to fetch: a key of a store, optionally one property of it."""

    store: str | None
    key: str
    property: str | None = None

    def render(self) -> str:
        """Return the canonical text form, which parses back to an equal reference.

        ``.`` separates the property unless the key or the property holds a dot (or the property a
        ``#``): then ``#``, which is split at its first occurrence. Every reference that ``parse_ref``
        returns renders back to itself; a key containing ``#`` cannot be written at all.
        """
        prefix = f"{self.store}:" if self.store else ""
        if self.property is None:
            return f"{prefix}{self.key}"
        plain = "." not in self.key and "." not in self.property and "#" not in self.property
        separator = "." if plain else "#"
        return f"{prefix}{self.key}{separator}{self.property}"

    def with_default_store(self, store: str | None) -> SecretRef:
        """Return this reference with ``store`` filled in when it names none."""
        if self.store or not store:
            return self
        return SecretRef(store, self.key, self.property)


def parse_ref(text: str, default_store: str | None = None) -> SecretRef:
    """Parse ``[store:]key[.property]``; ``key#property`` when the key itself holds a dot.

    The split is at the first ``:`` for the store, then at ``#`` if present, else at the last dot.
    A bare ``key`` stands for the whole secret. Empty parts are errors.
    """
    raw = text.strip()
    if not raw:
        raise ReferenceError("empty reference")
    store: str | None = None
    rest = raw
    if ":" in raw:
        store, rest = raw.split(":", 1)
        if not store:
            raise ReferenceError(f"reference {raw!r}: empty store before ':'")
    key, prop = _split_property(raw, rest)
    if not key:
        raise ReferenceError(f"reference {raw!r}: empty key")
    return SecretRef(store or default_store or None, key, prop)


def _split_property(raw: str, rest: str) -> tuple[str, str | None]:
    if "#" in rest:
        key, prop = rest.split("#", 1)
        if not prop:
            raise ReferenceError(f"reference {raw!r}: empty property after '#'")
        return key, prop
    if "." in rest:
        key, prop = rest.rsplit(".", 1)
        if not prop:
            raise ReferenceError(f"reference {raw!r}: empty property after '.'")
        return key, prop
    return rest, None
