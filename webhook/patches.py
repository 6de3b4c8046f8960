"""Tiny RFC 6902 op builders over the raw pod dict.

Rules that keep a patch valid whatever the pod looks like: pointer segments are escaped (``~0``, ``~1``);
a missing array or object is created with one ``add`` holding all the new items; an existing array gets
one ``add`` per item at ``/-`` (or at an index, to insert); ``replace`` is only ever used on a path that
exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict


class PatchOp(TypedDict):
    """One JSON Patch operation; the webhook only adds and replaces."""

    op: Literal["add", "replace"]
    path: str
    value: Any


def escape(segment: str | int) -> str:
    """Escape one JSON Pointer segment (RFC 6901): ``~`` first, then ``/``."""
    text = str(segment)
    if "~" not in text and "/" not in text:
        return text  # the usual case, such as "volumes"
    return text.replace("~", "~0").replace("/", "~1")


def pointer(*segments: str | int) -> str:
    """Join segments into an escaped JSON Pointer, e.g. ``/metadata/annotations/a~1b``."""
    return "".join(["/" + escape(segment) for segment in segments])


def add(path: str, value: Any) -> PatchOp:
    """An ``add`` op at an already escaped path."""
    return {"op": "add", "path": path, "value": value}


def replace(path: str, value: Any) -> PatchOp:
    """A ``replace`` op; only for a path that exists in the document."""
    return {"op": "replace", "path": path, "value": value}


def extend_array(
    parent: Mapping[str, Any], parent_path: str, key: str, items: Sequence[Any]
) -> list[PatchOp]:
    """Append ``items`` to ``parent[key]``, creating the array when it is missing or null."""
    if not items:
        return []
    path = parent_path + pointer(key)
    if parent.get(key) is None:
        return [add(path, list(items))]
    return [add(path + "/-", item) for item in items]


def insert_into_array(
    parent: Mapping[str, Any], parent_path: str, key: str, index: int, items: Sequence[Any]
) -> list[PatchOp]:
    """Insert ``items`` in order at ``index`` of ``parent[key]``, creating the array when missing."""
    if not items:
        return []
    path = parent_path + pointer(key)
    if parent.get(key) is None:
        return [add(path, list(items))]
    return [add(f"{path}/{index + offset}", item) for offset, item in enumerate(items)]


def set_member(
    parent: Mapping[str, Any], parent_path: str, key: str, member: str, value: Any
) -> list[PatchOp]:
    """Set ``parent[key][member] = value``, creating the object ``parent[key]`` when missing."""
    path = parent_path + pointer(key)
    if parent.get(key) is None:
        return [add(path, {member: value})]
    return [add(path + pointer(member), value)]
