"""The configuration in force, swapped atomically; readers never see a half-applied change."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from federation.config.model import Configuration
from federation.metrics import Metrics

log = logging.getLogger(__name__)


class ConfigHolder:
    """Holds the current ``Configuration`` and whether one has been loaded yet."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._current = Configuration()
        self._loaded = threading.Event()
        # Set by a source that can tell when what it holds is known to be out of date (Kubernetes mode).
        self.stale_reason: Callable[[], str | None] = lambda: None

    @property
    def current(self) -> Configuration:
        """The configuration in force (empty before the first load)."""
        return self._current

    @property
    def metrics(self) -> Metrics:
        """The metrics the configuration's sources count into."""
        return self._metrics

    @property
    def ready(self) -> bool:
        """True once a configuration has been loaded."""
        return self._loaded.is_set()

    def replace(self, config: Configuration) -> None:
        """Put ``config`` in force."""
        self._current = config
        self._loaded.set()
        self._metrics.config_reloads.labels("ok").inc()
        self._metrics.config_generation.set(time.time())
        self._metrics.config_ignored.set(len(config.ignored))
        log.info(
            "configuration loaded",
            extra={
                "source": config.source,
                "federations": len(config.federations),
                "authorizations": len(config.grants),
                "stores": len(config.stores),
                "secrets": len(config.secrets),
            },
        )
        # Never silently: what was skipped, and what will stop being read, on every reload.
        if config.ignored:
            log.warning(
                "resources ignored", extra={"source": config.source, "problems": list(config.ignored)}
            )
        if config.deprecated:
            log.warning(
                "deprecated shapes loaded",
                extra={"source": config.source, "problems": list(config.deprecated)},
            )

    def reject(self, source: str, problems: list[str]) -> None:
        """Record a configuration that could not be loaded; the one in force stays."""
        self._metrics.config_reloads.labels("error").inc()
        log.error(
            "configuration rejected; the last good one stays in force",
            extra={"source": source, "problems": problems},
        )

    def wait_ready(self, timeout: float) -> bool:
        """Block until a configuration is loaded or ``timeout`` passes."""
        return self._loaded.wait(timeout)
