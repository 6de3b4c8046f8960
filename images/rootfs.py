"""The builder and runtime root filesystems, made by mmdebstrap from Debian's packages, as local images.

No base image comes from a registry: mmdebstrap uses the Debian mirror and suite that the machine's apt
already uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from images.common import BuildError, digest, prune, run, say
from images.containers import policy_args

# The two root filesystems. The builder has pip (in python3.11-venv's bundled wheel) and the CA bundle
# (ca-certificates' maintainer script writes it, so this one is really installed); the runtime is only
# extracted: python3.11 and its libraries, no shell, no package manager, no maintainer scripts.
BUILDER_PACKAGES = ("python3.11", "python3.11-venv", "ca-certificates")


RUNTIME_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib")


# Left out of both: documentation, and everything that would let the image install packages.
EXCLUDED_PATHS = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")


REMOVED_PACKAGES = ("dpkg", "tar")


# What dpkg leaves behind besides its files, and mmdebstrap's stand-in for start-stop-daemon.
RUNTIME_REMOVED = (
    "var/lib/dpkg", "etc/dpkg", "etc/alternatives", "etc/cron.daily", "etc/logrotate.d", "usr/libexec/dpkg",
    "sbin/start-stop-daemon", "usr/share/dpkg", "usr/share/lintian",
)  # fmt: skip


def host_suite() -> str:
    """The Debian release of this machine: the root filesystems use the same mirror and suite."""
    release = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=(\S+)$", release, re.M)
    if match is None:
        raise BuildError("/etc/os-release names no VERSION_CODENAME; the build needs a Debian host")
    return match.group(1)


def apt_sources() -> str:
    """The apt sources that mmdebstrap copies from the host, as part of the cache key."""
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return "".join(path.read_text() for path in paths if path.is_file())


def mmdebstrap_options(kind: str) -> list[str]:
    """mmdebstrap's options for ``kind``; its hooks write the package list to ``$ESI_ROOTFS_LISTING``."""
    packages = BUILDER_PACKAGES if kind == "builder" else RUNTIME_PACKAGES
    variant = "essential" if kind == "builder" else "extract"
    options = ["--quiet", f"--variant={variant}", f"--include={','.join(packages)}"]
    options += [f"--dpkgopt=path-exclude={path}" for path in EXCLUDED_PATHS]
    if variant == "essential":
        # Without the merged-usr hook, usrmerge would pull in a full perl.
        options += ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
        listing = """dpkg-query -W -f '${Package} ${Version}\\n' > "$ESI_ROOTFS_LISTING\""""
        return [*options, f'--customize-hook=chroot "$1" {listing}']
    # The extract variant runs no customize hooks; its extract hooks see the downloaded packages. The
    # packages that come along only as dependencies of the extraction itself (dpkg and its tar) are
    # removed file by file, so the image holds no package manager, and are left out of the list.
    archives = '"$1"/var/cache/apt/archives'
    removed = "|".join(REMOVED_PACKAGES)
    return [
        *options,
        f"--extract-hook=for deb in {archives}/*.deb; do "
        """dpkg-deb --show --showformat '${Package} ${Version}\\n' "$deb"; done """
        f"""| grep -v -E '^({removed}) ' > "$ESI_ROOTFS_LISTING\"""",
        f"--extract-hook=for name in {' '.join(REMOVED_PACKAGES)}; do "
        f'for deb in {archives}/"$name"_*.deb; do '
        """dpkg-deb --fsys-tarfile "$deb" | tar -t | while read -r path; do """
        """[ -d "$1/$path" ] || rm -f "$1/$path"; done; done; done""",
    ]


def without(tar: Path, removed: Sequence[str]) -> None:
    """Rewrite ``tar`` without the members at or below the paths ``removed``."""
    filtered = tar.with_suffix(".filtered")
    with tarfile.open(tar) as source, tarfile.open(filtered, "w", format=tarfile.PAX_FORMAT) as target:
        for member in source:
            path = member.name.removeprefix("./")
            if any(path == gone or path.startswith(gone + "/") for gone in removed):
                continue
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    filtered.replace(tar)


def rootfs(cache: Path, kind: str, suite: str) -> tuple[Path, Path]:
    """The root filesystem tar of ``kind`` (builder or runtime) and its package list, made when missing."""
    options = mmdebstrap_options(kind)
    removed = RUNTIME_REMOVED if kind == "runtime" else ()
    key = digest(kind, suite, *options, *removed, apt_sources())
    folder = cache / "rootfs"
    folder.mkdir(parents=True, exist_ok=True)
    tar, listing = folder / f"{kind}-{key}.tar", folder / f"{kind}-{key}.packages"
    prune(tar)
    if tar.exists() and listing.exists():
        return tar, listing
    say(f"making the {kind} root filesystem with mmdebstrap")
    partial = tar.with_suffix(".new.tar")  # mmdebstrap picks the output format by the file name's ending
    partial_listing = listing.with_suffix(".new")
    run(
        ["mmdebstrap", *options, suite, str(partial)],
        {**os.environ, "ESI_ROOTFS_LISTING": str(partial_listing)},
    )
    if kind == "runtime":
        # mmdebstrap puts its start-stop-daemon stand-in back after the hooks: filter the tarball instead.
        without(partial, removed)
    partial_listing.write_text("".join(sorted(partial_listing.read_text().splitlines(True))))
    partial.rename(tar)
    partial_listing.rename(listing)
    return tar, listing


def base_image(env: Mapping[str, str], tar: Path, kind: str) -> str:
    """A local image holding ``tar`` as its only layer, imported when missing."""
    name = f"localhost/esi-images/{kind}:{tar.stem.split('-', 1)[1]}"
    exists = subprocess.run(
        ["buildah", "inspect", "--type", "image", name], env=dict(env), capture_output=True, check=False
    )
    if exists.returncode == 0:
        return name
    say(f"importing {tar.name} as {name}")
    container = run(["buildah", "from", *policy_args(env), "scratch"], env, capture=True).strip()
    try:
        run(["buildah", "add", container, str(tar), "/"], env, capture=True)
        run(["buildah", "commit", *policy_args(env), "--quiet", container, name], env, capture=True)
    finally:
        subprocess.run(["buildah", "rm", container], env=dict(env), capture_output=True, check=False)
    return name
