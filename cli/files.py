"""Atomic secret files: a reader sees the old content or the new, never a part, and no temp file stays.

Every file of a round is first written to a temporary file next to it (same directory, so the rename
cannot cross file systems), flushed to disk and given its mode; only when all of them are staged are
they renamed into place. A failure while staging removes every temporary file and leaves the old
files untouched. Contents are written exactly as given: no newline is added.
"""

from __future__ import annotations

import contextlib
import os

from cli.errors import CliError

TEMP_SUFFIX = ".esi-tmp"


class StagedFile:
    """A temporary file holding the new content of ``path``, waiting to be renamed over it."""

    __slots__ = ("path", "temp_path")

    def __init__(self, path: str, temp_path: str) -> None:
        self.path = path
        self.temp_path = temp_path


def write_files(contents: dict[str, bytes], mode: int) -> None:
    """Write every ``path -> bytes`` of ``contents`` with ``mode``: all staged first, then renamed."""
    staged: list[StagedFile] = []
    try:
        for path, data in contents.items():
            staged.append(_stage(path, data, mode))
        for index, item in enumerate(staged):
            _commit(item)
            staged[index] = StagedFile(item.path, "")
        _sync_directories({os.path.dirname(path) for path in contents})
    finally:
        for item in staged:
            if item.temp_path:
                _remove_quietly(item.temp_path)


def write_changed_files(contents: dict[str, bytes], mode: int) -> list[str]:
    """Rewrite only the files whose content or mode differs from ``contents``; return their paths."""
    changed = {path: data for path, data in contents.items() if not is_current(path, data, mode)}
    if changed:
        write_files(changed, mode)
    return sorted(changed)


def is_current(path: str, data: bytes, mode: int) -> bool:
    """Whether ``path`` already holds exactly ``data`` with permission bits ``mode``."""
    try:
        with open(path, "rb") as handle:
            current_mode = os.fstat(handle.fileno()).st_mode & 0o777
            return current_mode == mode and handle.read(len(data) + 1) == data
    except OSError:
        return False


def _stage(path: str, data: bytes, mode: int) -> StagedFile:
    directory, name = os.path.split(path)
    temp_path = os.path.join(directory, f".{name}.{os.urandom(6).hex()}{TEMP_SUFFIX}")
    try:
        os.makedirs(directory, exist_ok=True)
        # 0600 until the content is complete; O_EXCL so that a planted file or link is never reused.
        descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    staged = StagedFile(path, temp_path)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)  # explicit: the umask must not narrow the requested mode
    except OSError as exc:
        _remove_quietly(temp_path)
        raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    except BaseException:
        _remove_quietly(temp_path)
        raise
    return staged


def _commit(item: StagedFile) -> None:
    try:
        os.replace(item.temp_path, item.path)
    except OSError as exc:
        raise CliError(f"cannot write file {item.path}: {exc.strerror}") from None


def _sync_directories(directories: set[str]) -> None:
    # The renames are durable only once the directory entries themselves reach the disk.
    for directory in sorted(directories):
        try:
            descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            os.fsync(descriptor)
        except OSError:
            pass  # some file systems (e.g. tmpfs quirks) refuse fsync on directories; the rename stands
        finally:
            os.close(descriptor)


def _remove_quietly(path: str) -> None:
    # Already gone, or the directory became unwritable: nothing more can be done either way.
    with contextlib.suppress(OSError):
        os.unlink(path)
