"""Records of revocable credentials: who holds which lease, kept where a restart finds them again.

A record says which generator made the credential, its Vault lease, and its owner: the federation
that verified the token, the subject, and the pod (namespace, name, uid) from the token's
``kubernetes.io`` claims. Local mode keeps one JSON file per record in a state directory
(``LocalLeaseStore``): the directory is ``0700``, each file ``0600``, written to a temporary file,
flushed and renamed, so that a crash leaves either the old record or the new one, never half of one.
Every gunicorn worker reads the same directory, so a record written by one worker is revoked by
whichever worker is asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from federation.generators.model import GeneratorRef

log = logging.getLogger(__name__)

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class Owner:
    """Whom a credential was issued to."""

    federation: str
    subject: str
    namespace: str
    pod_name: str | None = None
    pod_uid: str | None = None

    @property
    def bound_to_pod(self) -> bool:
        """Whether the token named its pod (a projected token does; a bare TokenRequest does not)."""
        return bool(self.pod_name and self.pod_uid)

    def describe(self) -> str:
        """``subject (pod namespace/name)`` for log lines."""
        pod = f" (pod {self.namespace}/{self.pod_name})" if self.pod_name else ""
        return f"{self.subject}{pod}"


@dataclass(frozen=True)
class LeaseRecord:
    """One issued credential that can be revoked; times are seconds since the epoch."""

    id: str
    generator: GeneratorRef
    owner: Owner
    lease_id: str
    issued_at: float
    expires_at: float
    duration: float
    renewable: bool

    def renewed(self, expires_at: float, renewable: bool) -> LeaseRecord:
        """The record after a renewal."""
        return replace(self, expires_at=expires_at, renewable=renewable)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> LeaseRecord:
        """A record read back; ``ValueError``/``TypeError``/``KeyError`` when it is not one."""
        return cls(
            id=str(document["id"]),
            generator=GeneratorRef(**document["generator"]),
            owner=Owner(**document["owner"]),
            lease_id=str(document["lease_id"]),
            issued_at=float(document["issued_at"]),
            expires_at=float(document["expires_at"]),
            duration=float(document["duration"]),
            renewable=bool(document["renewable"]),
        )


def new_record_id() -> str:
    """A random record id: also a safe file name."""
    return secrets.token_hex(16)


class LeaseStore(Protocol):
    """Where records live; every method may be called from any thread or worker."""

    def put(self, record: LeaseRecord) -> None:
        """Add or replace ``record``; raises ``OSError`` when it cannot be kept."""
        ...

    def remove(self, record_id: str) -> None:
        """Forget a record (no error when it is already gone)."""
        ...

    def records(self) -> list[LeaseRecord]:
        """Every record held now."""
        ...

    def is_leader(self) -> bool:
        """Whether this process renews and revokes: true for one process at a time, which keeps it."""
        ...

    def close(self) -> None:
        """Give up leadership (server shutdown)."""
        ...


class LocalLeaseStore:
    """One file per record in ``directory`` (local mode)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIRECTORY_MODE)  # an existing directory is tightened too
        self._lock = threading.Lock()
        self._leader: int | None = None

    def put(self, record: LeaseRecord) -> None:
        """Write the record atomically (temporary file, fsync, rename, fsync of the directory)."""
        target = self._path(record.id)
        temporary = self.directory / f".{record.id}.{secrets.token_hex(4)}.tmp"
        data = json.dumps(record.to_json(), sort_keys=True).encode()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._sync_directory()

    def remove(self, record_id: str) -> None:
        """Delete the record's file."""
        with contextlib.suppress(FileNotFoundError):
            self._path(record_id).unlink()
        self._sync_directory()

    def records(self) -> list[LeaseRecord]:
        """Every readable record; a file that is not a record is logged and left for an operator."""
        found = []
        for path in sorted(self.directory.glob("*" + RECORD_SUFFIX)):
            try:
                document = json.loads(path.read_bytes())
                found.append(LeaseRecord.from_json(document))
            except FileNotFoundError:
                continue  # revoked by another worker meanwhile
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("unreadable lease record", extra={"file": path.name, "reason": type(exc).__name__})
        return found

    def is_leader(self) -> bool:
        """An exclusive, non-blocking ``flock`` on ``.revoker.lock``, held until ``close`` or exit.

        When the leading worker dies the kernel drops its lock and another worker takes over at its
        next attempt.
        """
        with self._lock:
            if self._leader is not None:
                return True
            descriptor = os.open(self.directory / ".revoker.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                return False
            self._leader = descriptor
            return True

    def close(self) -> None:
        """Release the leader lock, if held."""
        with self._lock:
            if self._leader is not None:
                os.close(self._leader)  # closing the descriptor releases the flock
                self._leader = None

    def _path(self, record_id: str) -> Path:
        if not record_id.isalnum():
            raise ValueError("a record id is alphanumeric")
        return self.directory / (record_id + RECORD_SUFFIX)

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
