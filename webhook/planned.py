"""The patches of pods already planned, by pod object: the pods of one rollout are the same object.

A ReplicaSet creates every pod of a Deployment from one template: at admission they carry the same
``generateName``, labels, owner and spec, and no name yet. ``plan`` is a pure function of the pod and
the webhook's settings (webhook/mutation.py), so the patch of the first pod is the patch of the next
299. An app keeps one :class:`PlannedPatches` for its settings; a review whose pod object is byte for byte
one seen before (as canonical JSON) gets that patch without parsing its annotations or planning again.

Only patches are kept, never refusals (they are worked out again, with their message), and only for
pods and patches up to ``MAX_ENTRY_BYTES`` each, so the memory a worker gives this is bounded:
2 * ``CAPACITY`` * ``MAX_ENTRY_BYTES`` (8 MiB) at worst, a few hundred KiB for ordinary pods.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving import fastjson
from webhook.patches import PatchOp

CAPACITY = 128
MAX_ENTRY_BYTES = 32 * 1024


@dataclass(frozen=True)
class PlannedPatch:
    """A pod's patch: encoded for the answer, and as ops (for ``esi-webhook mutate``)."""

    encoded: bytes
    ops: Sequence[PatchOp]


class PlannedPatches:
    """A bounded, thread-safe LRU of canonical pod JSON -> :class:`PlannedPatch`, for one app's settings."""

    def __init__(self, capacity: int = CAPACITY, max_entry_bytes: int = MAX_ENTRY_BYTES) -> None:
        self._capacity = capacity
        self._max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[bytes, PlannedPatch] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, pod: Mapping[str, Any]) -> bytes | None:
        """The pod as canonical JSON (sorted keys), or ``None`` when it is too large or nothing is kept."""
        if self._capacity == 0:
            return None
        try:
            encoded = fastjson.canonical(pod)
        except TypeError:  # nothing a JSON review holds, but then it is simply not kept
            return None
        return encoded if len(encoded) <= self._max_entry_bytes else None

    def get(self, key: bytes) -> PlannedPatch | None:
        """The patch planned for this pod, or ``None``."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: bytes, planned: PlannedPatch) -> None:
        """Keep ``planned`` for this pod unless its patch is too large; forget the least recently used."""
        if len(planned.encoded) > self._max_entry_bytes:
            return
        with self._lock:
            self._entries[key] = planned
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# For callers without an app (``esi-webhook mutate``, tests): keeps nothing.
NOTHING_KEPT = PlannedPatches(capacity=0)
