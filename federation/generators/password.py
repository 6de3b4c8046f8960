"""ESO's ``Password`` generator: the rules of ``sethvargo/go-password``, which ESO uses.

``spec``: ``length`` (default 24; 0 or less also means 24), ``digits`` and ``symbols`` (counts;
default a quarter of the length each, rounded down), ``symbolCharacters`` (default
``~!@#$%^&*()_+`-={}|[]\\:"<>?,./``; empty also means the default), ``noUpper`` (only lower-case
letters), ``allowRepeat`` (default false: no character appears twice). The rest of the length is
letters. Answer: ``{"password": "..."}``.

Every character comes from ``secrets`` (the operating system's CSPRNG), and the positions of letters,
digits and symbols are shuffled with it too.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.generators.base import Generated
from federation.generators.model import GeneratorConfig, GeneratorSpecError

DEFAULT_LENGTH = 24
DEFAULT_SYMBOLS = '~!@#$%^&*()_+`-={}|[]\\:"<>?,./'
MAX_LENGTH = 4096  # a password longer than this is a mistake in the spec, not a wish
_RANDOM = secrets.SystemRandom()


@dataclass(frozen=True)
class PasswordSpec:
    """A ``Password`` spec with ESO's defaults applied and its counts checked."""

    length: int = DEFAULT_LENGTH
    digits: int = DEFAULT_LENGTH // 4
    symbols: int = DEFAULT_LENGTH // 4
    symbol_characters: str = DEFAULT_SYMBOLS
    no_upper: bool = False
    allow_repeat: bool = False

    @property
    def letters(self) -> str:
        """The letters a password may hold."""
        return string.ascii_lowercase + ("" if self.no_upper else string.ascii_uppercase)


def parse_spec(where: str, spec: Mapping[str, Any]) -> PasswordSpec:
    """The spec with defaults applied; ``GeneratorSpecError`` when no password can meet it."""
    length = _integer(where, spec, "length", DEFAULT_LENGTH, allow_negative=True)
    if length <= 0:
        length = DEFAULT_LENGTH
    digits = _integer(where, spec, "digits", length // 4)
    symbols = _integer(where, spec, "symbols", length // 4)
    chars = spec.get("symbolCharacters")
    if chars is not None and not isinstance(chars, str):
        raise GeneratorSpecError(f"{where}: symbolCharacters must be a string")
    flags = {}
    for name in ("noUpper", "allowRepeat"):
        value = spec.get(name, False)
        if not isinstance(value, bool):
            raise GeneratorSpecError(f"{where}: {name} must be true or false")
        flags[name] = value
    parsed = PasswordSpec(
        length, digits, symbols, chars or DEFAULT_SYMBOLS, flags["noUpper"], flags["allowRepeat"]
    )
    _check_feasible(where, parsed)
    return parsed


def _integer(
    where: str, spec: Mapping[str, Any], name: str, default: int, allow_negative: bool = False
) -> int:
    value = spec.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise GeneratorSpecError(f"{where}: {name} must be an integer")
    if value < 0 and not allow_negative:
        raise GeneratorSpecError(f"{where}: {name} must not be negative")
    if value > MAX_LENGTH:
        raise GeneratorSpecError(f"{where}: {name} must be at most {MAX_LENGTH}")
    return value


def _check_feasible(where: str, spec: PasswordSpec) -> None:
    letters = spec.length - spec.digits - spec.symbols
    if letters < 0:
        raise GeneratorSpecError(
            f"{where}: digits ({spec.digits}) plus symbols ({spec.symbols}) exceed length ({spec.length})"
        )
    if spec.allow_repeat:
        if spec.symbols and not spec.symbol_characters:
            raise GeneratorSpecError(f"{where}: symbols asked but no symbolCharacters")
        return
    # Without repeats every character is used once: each class must hold enough distinct characters.
    pools = (("letters", letters, set(spec.letters)), ("digits", spec.digits, set(string.digits)))
    symbols = set(spec.symbol_characters) - set(spec.letters) - set(string.digits)
    for name, wanted, pool in (*pools, ("symbols", spec.symbols, symbols)):
        if wanted > len(pool):
            raise GeneratorSpecError(
                f"{where}: {wanted} {name} without repeats, but only {len(pool)} distinct {name} exist "
                "(set allowRepeat: true, or ask for fewer)"
            )


def generate_password(spec: PasswordSpec) -> str:
    """A password meeting ``spec`` (which ``parse_spec`` has checked)."""
    letters = spec.length - spec.digits - spec.symbols
    used: set[str] = set()
    chosen: list[str] = []
    for pool, count in (
        (spec.letters, letters),
        (string.digits, spec.digits),
        (spec.symbol_characters, spec.symbols),
    ):
        if spec.allow_repeat:
            chosen.extend(secrets.choice(pool) for _ in range(count))
            continue
        available = sorted(set(pool) - used)
        picked = _RANDOM.sample(available, count)
        used.update(picked)
        chosen.extend(picked)
    _RANDOM.shuffle(chosen)
    return "".join(chosen)


class PasswordGenerator:
    """``Password``: a new password on every call."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.spec = parse_spec(config.ref.describe(), config.spec)

    def generate(self) -> Generated:
        """``{"password": ...}``."""
        return Generated({"password": generate_password(self.spec)})

    def close(self) -> None:
        """Nothing to release."""


def build(config: GeneratorConfig, **_: Any) -> PasswordGenerator:
    """Generator factory (see ``generators.registry``)."""
    return PasswordGenerator(config)
