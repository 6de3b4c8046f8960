"""Durations as the whole product writes them: ``90``, ``90s``, ``5m``, ``1h`` (seconds when bare).

The one parser of the three programs (esi-cli's options, the webhook's flags and annotations, the
federation server's flags), so that a value one accepts the others accept too. Digits, an optional
fraction and an optional unit, nothing else: no exponent (``1e3``), no sign (``+5s``), no bare
fraction (``.5s``), no ``_`` separators, no ``inf``/``nan``. At most a year (``8760h``): a longer value
is a typo, not a setting.
"""

from __future__ import annotations

MAX_SECONDS = 365 * 24 * 3600
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}
_DIGITS = frozenset("0123456789")


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text``; raise ``ValueError`` naming the text when malformed."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in ("s", "m", "h") else ""
    whole, _, fraction = raw[: len(raw) - len(unit)].partition(".")
    if not _is_digits(whole) or ("." in raw and not _is_digits(fraction)):
        raise ValueError(f"invalid duration {text!r}: use 90, 90s, 5m or 1h")
    seconds = float(raw[: len(raw) - len(unit)]) * _UNIT_SECONDS[unit]
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {text!r}: at most {MAX_SECONDS // 3600}h (a year)")
    return seconds


def _is_digits(text: str) -> bool:
    # str.isdigit() accepts superscripts and other scripts' digits, which float() does not.
    return bool(text) and set(text) <= _DIGITS
