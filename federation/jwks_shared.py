"""Where a federation's last JWKS fetch attempt is recorded, so that it is made once, not once per worker.

In one process a ``MemorySlot`` is enough: the cache's own lock serialises its threads. Under gunicorn
``esi-federation serve`` gives every worker the same directory, and a ``FileSlot`` there (``flock`` +
atomic rename) lets one worker's fetch serve all of them: the JWKS endpoint sees one fetch per
federation per refresh interval, however many workers there are. Only public keys are written.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol


@dataclass(frozen=True)
class Attempt:
    """The last fetch attempt: when, the last good document (JSON text) and when it was fetched."""

    attempted_at: float
    fetched_at: float | None
    document: str | None
    error: str | None


class AttemptSlot(Protocol):
    """A place holding one federation's last ``Attempt``; entered while deciding whether to fetch."""

    def __enter__(self) -> AttemptSlot: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def read(self) -> Attempt | None:
        """The attempt recorded, if any."""
        ...

    def write(self, attempt: Attempt) -> None:
        """Record ``attempt``."""
        ...


class MemorySlot:
    """A slot private to this process."""

    def __init__(self) -> None:
        self._attempt: Attempt | None = None

    def __enter__(self) -> MemorySlot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def read(self) -> Attempt | None:
        """The attempt recorded, if any."""
        return self._attempt

    def write(self, attempt: Attempt) -> None:
        """Record ``attempt``."""
        self._attempt = attempt


class FileSlot:
    """A slot in a directory the workers share: ``<stem>.json``, guarded by ``flock`` on ``<stem>.lock``."""

    def __init__(self, directory: Path, stem: str) -> None:
        self._data = directory / f"{stem}.json"
        self._lock_path = directory / f"{stem}.lock"
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> FileSlot:
        self._lock = self._lock_path.open("ab")
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def read(self) -> Attempt | None:
        """The attempt recorded, if any (a damaged file counts as none)."""
        try:
            return Attempt(**json.loads(self._data.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, attempt: Attempt) -> None:
        """Record ``attempt`` atomically."""
        temporary = self._data.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(attempt)), encoding="utf-8")
        temporary.replace(self._data)
