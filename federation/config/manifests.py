"""Local mode: every ``*.yaml``/``*.yml`` of a directory, reloaded when a file changes.

A poller compares a digest of the files' contents every ``reload_interval`` seconds. A directory that
fails to parse is rejected as a whole: the last good configuration stays in force.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from federation.config.holder import ConfigHolder
from federation.config.model import Configuration
from federation.config.parse import build_configuration
from federation.errors import ConfigurationError
from serving.safe_yaml import YamlRefused, load_all

MANIFEST_SUFFIXES = (".yaml", ".yml")


def manifest_files(directory: Path) -> list[Path]:
    """The manifest files of ``directory`` (not recursive), sorted by name."""
    if not directory.is_dir():
        raise ConfigurationError([f"{directory}: not a directory"])
    files = sorted(p for p in directory.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    # Symbolic links within the directory are fine (a mounted ConfigMap is made of them); one that leads
    # out of it would make the server read, and report on, a file nobody put there for it.
    root = directory.resolve()
    outside = [p.name for p in files if not p.resolve().is_relative_to(root)]
    if outside:
        raise ConfigurationError(
            [f"{name}: a symbolic link to a file outside {directory}; not read" for name in outside]
        )
    return files


def read_resources(directory: Path) -> Iterator[dict[str, Any]]:
    """Every resource document of the directory; ``ConfigurationError`` naming the file on bad YAML."""
    for path in manifest_files(directory):
        try:
            documents = load_all(path.read_text(encoding="utf-8"))
        except (YamlRefused, UnicodeDecodeError, OSError) as exc:
            raise ConfigurationError([f"{path.name}: {exc}"]) from None
        for index, document in enumerate(documents):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ConfigurationError([f"{path.name} document {index + 1}: not a mapping"])
            yield document


def load_directory(directory: Path) -> Configuration:
    """Parse the whole directory into one configuration."""
    return build_configuration(read_resources(directory), source=f"manifests:{directory}")


def _fingerprint(directory: Path) -> str:
    # Contents, not mtimes: an edit within the clock's granularity, or a copy that keeps the mtime,
    # must still be seen. The directory is small and read every few seconds at most.
    digest = hashlib.sha256()
    try:
        for path in manifest_files(directory):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except (OSError, ConfigurationError) as exc:
        digest.update(repr(exc).encode())
    return digest.hexdigest()


class ManifestsWatcher:
    """Loads the directory now, then reloads it in a daemon thread whenever its files change."""

    def __init__(self, directory: Path, holder: ConfigHolder, interval: float) -> None:
        self._directory = directory
        self._holder = holder
        self._interval = interval
        self._stop = threading.Event()
        self._seen: str | None = None
        self._thread = threading.Thread(target=self._run, name="manifests-watcher", daemon=True)

    def start(self) -> None:
        """Load once synchronously, then start polling."""
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def poll(self) -> None:
        """Reload when the files changed since the last poll."""
        seen = _fingerprint(self._directory)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            config = load_directory(self._directory)
        except ConfigurationError as exc:
            self._holder.reject(str(self._directory), exc.problems)
            return
        self._holder.replace(config)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()
