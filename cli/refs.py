"""Secret references: ``[store:]key[.property]``, or ``[store:]key#property``; and generator references,
``generator:<namespace>/<Kind>/<name>[.property]`` (``#property`` when the name holds a dot).

This module is shared with the webhook, which validates annotations with it, so that the webhook and
esi-cli can never disagree on what a reference means. It imports nothing but the standard library.
``generator:`` is reserved: a ClusterSecretStore named ``generator`` cannot be named in a reference.
"""

from __future__ import annotations

GENERATOR_PREFIX = "generator:"

LINE_SEPARATOR = "\n"
"""What separates the entries of ``ESI_FILES`` / ``ESI_ENV``, and nothing else does."""

# Every character ``str.splitlines`` splits at. None may appear inside an entry or a reference: an
# esi-cli that split at one of them would read entries the webhook never checked.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_NOT_IN_A_REFERENCE = LINE_BREAKS | {chr(code) for code in range(32)} | {"\x7f"}


class ReferenceError(ValueError):
    """A reference that cannot be parsed; the message names the reference and the problem."""


class SecretRef:
    """One secret to fetch: a key of a store, optionally one property of it; or, with ``generator``
    ``(namespace, kind, name)``, a value generated for this caller (``key`` is then
    ``namespace/Kind/name`` and ``store`` None). Immutable and hashable.

    A hand-written value class rather than a frozen dataclass: ``dataclasses`` imports ``inspect``,
    which costs esi-cli more start-up time than its whole request.
    """

    __slots__ = ("generator", "key", "property", "store")

    store: str | None
    key: str
    property: str | None
    generator: tuple[str, str, str] | None

    def __init__(
        self,
        store: str | None,
        key: str,
        property: str | None = None,
        generator: tuple[str, str, str] | None = None,
    ) -> None:
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "property", property)
        object.__setattr__(self, "generator", generator)

    @classmethod
    def of_generator(cls, namespace: str, kind: str, name: str, property: str | None = None) -> SecretRef:
        """A reference to what generator ``namespace/kind/name`` makes."""
        return cls(None, f"{namespace}/{kind}/{name}", property, (namespace, kind, name))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SecretRef is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SecretRef is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        if self.generator is not None:
            return f"SecretRef(generator={self.generator!r}, property={self.property!r})"
        return f"SecretRef(store={self.store!r}, key={self.key!r}, property={self.property!r})"

    def _fields(self) -> tuple[object, ...]:
        return (self.store, self.key, self.property, self.generator)

    def render(self) -> str:
        """Return the canonical text form, which parses back to an equal reference.

        ``.`` separates the property unless the key or the property holds a dot (or the property a
        ``#``): then ``#``, which is split at its first occurrence. Every reference that ``parse_ref``
        returns renders back to itself; a key containing ``#`` cannot be written at all.
        """
        prefix = f"{self.store}:" if self.store else ""
        if self.generator is not None:
            prefix = GENERATOR_PREFIX
        if self.property is None:
            return f"{prefix}{self.key}"
        plain = "." not in self.key and "." not in self.property and "#" not in self.property
        separator = "." if plain else "#"
        return f"{prefix}{self.key}{separator}{self.property}"

    def with_default_store(self, store: str | None) -> SecretRef:
        """Return this reference with ``store`` filled in when it names none (a generator never has one)."""
        if self.store or not store or self.generator is not None:
            return self
        return SecretRef(store, self.key, self.property)


def join_lines(entries: list[str]) -> str:
    """The value of ``ESI_FILES`` / ``ESI_ENV`` holding ``entries`` (each checked by ``split_lines``)."""
    return LINE_SEPARATOR.join(entries)


def split_lines(text: str) -> list[str]:
    """The entries of ``ESI_FILES`` / ``ESI_ENV``: one per ``\n``; blanks around them and empty lines
    are ignored. Any other line boundary inside an entry is an error, never a separator."""
    entries = []
    for number, line in enumerate(text.split(LINE_SEPARATOR), start=1):
        entry = line.strip()
        if not entry:
            continue
        if has_line_break(entry):
            raise ReferenceError(f"line {number}: {entry!r} holds a line break other than \\n")
        entries.append(entry)
    return entries


def has_line_break(text: str) -> bool:
    """Whether ``text`` holds any character at which Python (``str.splitlines``) ends a line."""
    # isdisjoint walks the string in C: the webhook checks every reference of every pod.
    return not LINE_BREAKS.isdisjoint(text)


def parse_ref(text: str, default_store: str | None = None) -> SecretRef:
    """Parse ``[store:]key[.property]``; ``key#property`` when the key itself holds a dot.

    The split is at the first ``:`` for the store, then at ``#`` if present, else at the last dot.
    A bare ``key`` stands for the whole secret. Empty parts are errors, and so is a line break or any
    other control character inside the reference (blanks around it are ignored).
    """
    raw = text.strip()
    if not raw:
        raise ReferenceError("empty reference")
    if not _NOT_IN_A_REFERENCE.isdisjoint(raw):
        raise ReferenceError(f"reference {raw!r}: a reference is one line without control characters")
    if raw.startswith(GENERATOR_PREFIX):
        return _parse_generator_ref(raw)
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


def _parse_generator_ref(raw: str) -> SecretRef:
    """``generator:<namespace>/<Kind>/<name>[.property]``; ``#property`` when the name holds a dot."""
    key, prop = _split_property(raw, raw[len(GENERATOR_PREFIX) :])
    parts = key.split("/")
    if len(parts) != 3 or not all(parts):
        raise ReferenceError(
            f"reference {raw!r}: a generator reference is generator:<namespace>/<Kind>/<name>[.property]"
        )
    namespace, kind, name = parts
    if not kind[:1].isupper():
        raise ReferenceError(
            f"reference {raw!r}: the generator kind {kind!r} is written as ESO writes it (Password)"
        )
    return SecretRef.of_generator(namespace, kind, name, prop)
