"""Durations as the whole product writes them: ``90``, ``90s``, ``5m``, ``1h`` (seconds when bare)."""

from __future__ import annotations

import math

_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text``; raise ``ValueError`` naming the text when malformed."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in ("s", "m", "h") else ""
    number = raw[: len(raw) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: use 90, 90s, 5m or 1h") from None
    seconds = value * _UNIT_SECONDS[unit]
    # Checked after the unit is applied: "1e308h" is a finite number but not a finite duration.
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: must be a finite, non-negative number")
    return seconds
