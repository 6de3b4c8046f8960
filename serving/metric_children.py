"""Labelled metric children looked up once: both servers update the same few on every request."""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics import MetricWrapperBase


class LabelledChildren:
    """``children(metric, *values)`` is ``metric.labels(*values)``, from a dict after the first call.

    prometheus_client checks and joins the label values again on each ``labels`` call; the children it
    returns never change, so keeping them is safe (the label sets are few: routes, statuses, stores).
    """

    def __init__(self) -> None:
        self._found: dict[tuple[int, tuple[str, ...]], Any] = {}

    def __call__(self, metric: MetricWrapperBase, *values: str) -> Any:
        """The child of ``metric`` for ``values``."""
        key = (id(metric), values)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = metric.labels(*values)
        return found
