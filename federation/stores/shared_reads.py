"""Store reads shared by the workers of one server: a key is read once, whichever worker asks first.

gunicorn runs ``--workers`` processes. Without this table each of them reads the same key from the
store, and during a rollout each does so once per cache period. ``esi-federation serve`` creates the
table before forking, in anonymous shared memory (``memfd_create``: RAM only, no path, gone with the
processes), so secret values never touch a filesystem. For each (store, key) a worker finds there a
fresh answer, a read another worker has in flight (and waits for it), or nothing (and reads, then
publishes the answer). A worker killed while holding the table's lock releases it as it dies: the
lock is a POSIX record lock on the memory's descriptor, plus a thread lock inside each process.

Layout: ``SLOTS`` slots of ``SLOT_BYTES``, chosen by a hash of (store, key). Two keys that share a slot
evict each other, which costs a read, never a wrong answer: the full digest is compared. An answer too
large for a slot is not shared.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from federation.stores.base import SecretData

SLOTS = 128
SLOT_BYTES = 32 * 1024
# state, digest of (store, key), when the read started, until when its answer may be served, payload size
_HEADER = struct.Struct("<B7x32sddI")
_EMPTY, _PENDING, _READY = 0, 1, 2


@dataclass(frozen=True)
class Claim:
    """What the table says about a key.

    ``hit``: ``data`` is an answer to serve. ``wait``: another worker's read, started at ``started``, is
    in flight. ``lead``: this worker reads (the slot now says so, from ``started``) and then publishes.
    """

    kind: Literal["hit", "wait", "lead"]
    started: float
    expires: float = 0.0
    data: SecretData | None = field(default=None, repr=False)


class SharedReads:
    """The table, mapped into every worker; every method takes the lock for a few microseconds."""

    def __init__(self, fd: int, memory: mmap.mmap, pending_limit: float) -> None:
        self._fd = fd
        self._memory = memory
        self._pending_limit = pending_limit
        self._thread_lock = threading.Lock()

    @classmethod
    def create(cls, pending_limit: float) -> SharedReads | None:
        """A new table (before the workers fork); None where the OS has no ``memfd_create``.

        A read in flight for longer than ``pending_limit`` seconds is taken for abandoned (its worker
        died): the next worker to ask reads the key itself.
        """
        if not hasattr(os, "memfd_create"):
            return None
        fd = os.memfd_create("esi-federation-store-reads", os.MFD_CLOEXEC)
        os.ftruncate(fd, SLOTS * SLOT_BYTES)
        return cls(fd, mmap.mmap(fd, SLOTS * SLOT_BYTES), pending_limit)

    def claim(self, store: str, key: str, now: float, waiting_for: float | None = None) -> Claim:
        """Look ``(store, key)`` up at ``now``: a fresh answer, a read in flight, or this worker's turn.

        A worker that waits for the read started at ``waiting_for`` takes that read's answer (or a later
        one's) even when no cache period covers it: merging a read in flight is not caching.
        """
        digest = _digest(store, key)
        offset = _slot(digest)
        with self._locked():
            state, found, started, expires, length = _HEADER.unpack_from(self._memory, offset)
            if found == digest and state == _READY:
                fresh = expires > now or (waiting_for is not None and started >= waiting_for)
                if fresh:
                    payload = self._memory[offset + _HEADER.size : offset + _HEADER.size + length]
                    return Claim("hit", started, expires, json.loads(payload))
            if found == digest and state == _PENDING and started + self._pending_limit > now:
                return Claim("wait", started)
            self._write(offset, length, (_PENDING, digest, now, 0.0), b"")
            return Claim("lead", now)

    def publish(self, store: str, key: str, claim: Claim, expires: float, data: SecretData) -> None:
        """Record the answer of the read ``claim`` led; it is served to others until ``expires``."""
        try:
            payload = json.dumps(data).encode()
        except (TypeError, ValueError):
            payload = b""
        if not payload or len(payload) > SLOT_BYTES - _HEADER.size:
            self.abandon(store, key, claim)
            return
        digest = _digest(store, key)
        offset = _slot(digest)
        with self._locked():
            state, found, started, _, length = _HEADER.unpack_from(self._memory, offset)
            if (state, found, started) == (_PENDING, digest, claim.started):
                self._write(offset, length, (_READY, digest, claim.started, expires), payload)

    def abandon(self, store: str, key: str, claim: Claim) -> None:
        """The read ``claim`` led failed: empty the slot, so that a waiting worker reads itself."""
        digest = _digest(store, key)
        offset = _slot(digest)
        with self._locked():
            state, found, started, _, length = _HEADER.unpack_from(self._memory, offset)
            if (state, found, started) == (_PENDING, digest, claim.started):
                self._write(offset, length, (_EMPTY, b"\0" * 32, 0.0, 0.0), b"")

    def close(self) -> None:
        """Unmap the table and close its descriptor (in the process that calls it)."""
        self._memory.close()
        os.close(self._fd)

    def _write(
        self, offset: int, old_length: int, header: tuple[int, bytes, float, float], payload: bytes
    ) -> None:
        """Replace a slot: (state, digest, started, expires) and the payload."""
        body = offset + _HEADER.size
        # The previous answer's bytes do not outlive it: zeroed before anything else is written.
        self._memory[body : body + old_length] = bytes(old_length)
        self._memory[body : body + len(payload)] = payload
        _HEADER.pack_into(self._memory, offset, *header, len(payload))

    def _locked(self) -> _Locked:
        return _Locked(self._thread_lock, self._fd)


class _Locked:
    """The thread lock of this process, then the record lock shared with the other workers."""

    def __init__(self, thread_lock: threading.Lock, fd: int) -> None:
        self._thread_lock = thread_lock
        self._fd = fd

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def _digest(store: str, key: str) -> bytes:
    return hashlib.sha256(f"{store}\0{key}".encode()).digest()


def _slot(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "little") % SLOTS * SLOT_BYTES
