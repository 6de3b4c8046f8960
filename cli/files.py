"""Atomic secret files: a reader sees the old content or the new, never a part, and no temp file stays.

Every file of a round is first written to a temporary file next to it (same directory, so the rename
cannot cross file systems), flushed to disk and given its mode; only when all of them are staged are
they renamed into place. A failure while staging removes every temporary file and leaves the old
files untouched. Contents are written exactly as given: no newline is added.

Under the root directory (``--dir``) no path component may be a symbolic link: the directories are
walked one at a time from the root with ``O_NOFOLLOW``, and the file is created and renamed relative to
the directory found, so a link planted in place of a sub-directory cannot send a secret elsewhere.
"""

from __future__ import annotations

import contextlib
import os

from cli.errors import CliError

TEMP_SUFFIX = ".esi-tmp"


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class StagedFile:
    """A temporary file holding the new content of ``path``, waiting to be renamed over it.

    ``name`` and ``temp_name`` are relative to the open directory ``directory_fd``.
    """

    __slots__ = ("directory_fd", "name", "path", "temp_name")

    def __init__(self, path: str, directory_fd: int, name: str, temp_name: str) -> None:
        self.path = path
        self.directory_fd = directory_fd
        self.name = name
        self.temp_name = temp_name


def write_files(contents: dict[str, bytes], mode: int, root: str | None = None) -> None:
    """Write every ``path -> bytes`` of ``contents`` with ``mode``: all staged first, then renamed.

    Paths under ``root`` are reached without following any symbolic link below ``root``.
    """
    staged: list[StagedFile] = []
    try:
        for path, data in contents.items():
            staged.append(_stage(path, data, mode, root))
        for item in staged:
            _commit(item)
        # The renames are durable only once the directory entries themselves reach the disk.
        for item in staged:
            with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
                os.fsync(item.directory_fd)
    finally:
        for item in staged:
            if item.temp_name:
                _remove_quietly(item.temp_name, item.directory_fd)
            os.close(item.directory_fd)


def write_changed_files(contents: dict[str, bytes], mode: int, root: str | None = None) -> list[str]:
    """Rewrite only the files whose content or mode differs from ``contents``; return their paths."""
    changed = {path: data for path, data in contents.items() if not is_current(path, data, mode)}
    if changed:
        write_files(changed, mode, root)
    return sorted(changed)


def is_current(path: str, data: bytes, mode: int) -> bool:
    """Whether ``path`` already holds exactly ``data`` with permission bits ``mode``."""
    try:
        with open(path, "rb") as handle:
            current_mode = os.fstat(handle.fileno()).st_mode & 0o777
            return current_mode == mode and handle.read(len(data) + 1) == data
    except OSError:
        return False


def open_directory(path: str, root: str | None) -> int:
    """A descriptor of ``path``'s directory, created as needed; below ``root``, reached link by link
    with no symbolic link followed (``CliError`` naming the link otherwise)."""
    directory = os.path.dirname(path)
    base = os.path.abspath(root) if root else None
    if base is None or not (directory == base or directory.startswith(base.rstrip("/") + "/")):
        try:
            os.makedirs(directory, exist_ok=True)
            return os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    try:
        os.makedirs(base, exist_ok=True)
        descriptor = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    walked = base
    for part in os.path.relpath(directory, base).split(os.sep):
        if part in ("", "."):
            continue
        walked = os.path.join(walked, part)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=descriptor)
            child = os.open(part, _DIRECTORY_FLAGS, dir_fd=descriptor)
        except OSError as exc:
            os.close(descriptor)
            if os.path.islink(walked):
                raise CliError(
                    f"cannot write file {path}: {walked} is a symbolic link; nothing under --dir may be one"
                ) from None
            raise CliError(f"cannot write file {path}: {exc.strerror}") from None
        os.close(descriptor)
        descriptor = child
    return descriptor


def _stage(path: str, data: bytes, mode: int, root: str | None) -> StagedFile:
    directory_fd = open_directory(path, root)
    name = os.path.basename(path)
    temp_name = f".{name}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
    try:
        # 0600 until the content is complete; O_EXCL so that a planted file or link is never reused.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        descriptor = os.open(temp_name, flags, 0o600, dir_fd=directory_fd)
    except OSError as exc:
        os.close(directory_fd)
        raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    staged = StagedFile(path, directory_fd, name, temp_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)  # explicit: the umask must not narrow the requested mode
    except OSError as exc:
        _remove_quietly(temp_name, directory_fd)
        os.close(directory_fd)
        raise CliError(f"cannot write file {path}: {exc.strerror}") from None
    except BaseException:
        _remove_quietly(temp_name, directory_fd)
        os.close(directory_fd)
        raise
    return staged


def _commit(item: StagedFile) -> None:
    try:
        os.replace(item.temp_name, item.name, src_dir_fd=item.directory_fd, dst_dir_fd=item.directory_fd)
    except OSError as exc:
        raise CliError(f"cannot write file {item.path}: {exc.strerror}") from None
    item.temp_name = ""


def _remove_quietly(name: str, directory_fd: int) -> None:
    # Already gone, or the directory became unwritable: nothing more can be done either way.
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=directory_fd)
