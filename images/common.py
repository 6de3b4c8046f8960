"""What every step of the image build shares: the cache, its keys, running tools, progress."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


PRUNE_AFTER_S = 24 * 3600


class BuildError(Exception):
    """A step of the build failed; the message says which and why."""


def cache_dir() -> Path:
    """Where slow results are kept between builds."""
    configured = os.environ.get("ESI_IMAGES_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "esi-federation" / "images"


def digest(*parts: str | bytes) -> str:
    """A short key of ``parts`` for cache entries."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part.encode() if isinstance(part, str) else part)
        hashed.update(b"\0")
    return hashed.hexdigest()[:16]


def files_digest(paths: Iterable[Path]) -> str:
    """A key of the names and contents of ``paths``."""
    return digest(*(f"{path.relative_to(ROOT)}\n".encode() + path.read_bytes() for path in sorted(paths)))


def prune(keep: Path) -> None:
    """Mark ``keep`` as used now, and remove the entries of the same kind that no build used for a day.

    Not every other entry: worktrees at different commits share the cache, and each would otherwise
    delete the other's root filesystems on every build.
    """
    if keep.exists():
        os.utime(keep)
    kind = keep.name.split("-", 1)[0] + "-"
    stale = time.time() - PRUNE_AFTER_S
    for entry in keep.parent.glob(f"{kind}*"):
        if entry.name.split(".", 1)[0] != keep.name.split(".", 1)[0] and entry.stat().st_mtime < stale:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def run(argv: Sequence[str], env: Mapping[str, str] | None = None, capture: bool = False) -> str:
    """Run ``argv``; ``BuildError`` with the tail of its output when it fails."""
    done = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr or "")[-2000:] if capture else "see the output above"
        raise BuildError(f"{' '.join(argv[:3])} ... exited {done.returncode}: {detail}")
    return done.stdout or ""


def say(message: str) -> None:
    """Progress on stderr, so that stdout stays clean."""
    print(f"images: {message}", file=sys.stderr, flush=True)
