"""``make images``: build the three OCI archives in build/images/ (docs/images.md).

No base image comes from a registry: the root filesystems are made by mmdebstrap from the Debian mirror
that the machine's apt already uses, wheels are downloaded on the host, and the builds run with
``--network none``. Every podman/buildah setting is private to these builds (``CONTAINERS_*`` variables
pointing at files in the cache); nothing under /etc is read for configuration or changed.

What is slow is cached under ~/.cache/esi-federation/images (``ESI_IMAGES_CACHE`` overrides), keyed by
its inputs: the root filesystems, the wheels, the self-contained esi-cli, and buildah's layers.

Usage: python images/build.py [--output DIR] [NAME ...]     (NAME: esi-federation esi-webhook esi-init)
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "images"
REGISTRY = "ghcr.io/esi-federation"
NAMES = ("esi-federation", "esi-webhook", "esi-init")
CHARTS = {
    "esi-federation": ROOT / "charts" / "esi-federation-server",
    "esi-webhook": ROOT / "charts" / "esi-webhook",
}
SOURCE = "https://github.com/esi-federation/esi-federation"
LICENSE = "Apache-2.0"
DESCRIPTIONS = {
    "esi-federation": "ESI federation server: hands secrets from cluster-main's stores to other clusters",
    "esi-webhook": "ESI mutating admission webhook: injects esi-init and esi-cli into annotated pods",
    "esi-init": "esi-cli, self-contained: fetches secrets in an init container and wraps env-mode apps",
}
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


PRUNE_AFTER_S = 24 * 3600


class BuildError(Exception):
    """A step of the build failed; the message says which and why."""


def cache_dir() -> Path:
    """Where slow results are kept between builds."""
    configured = os.environ.get("ESI_IMAGES_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "esi-federation" / "images"


def app_version() -> str:
    """The charts' appVersion: the tag of all three images (the charts must agree)."""
    versions = {}
    for name, chart in CHARTS.items():
        match = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', (chart / "Chart.yaml").read_text(), re.M)
        if match is None:
            raise BuildError(f"{chart}/Chart.yaml has no appVersion")
        versions[name] = match.group(1)
    if len(set(versions.values())) != 1:
        raise BuildError(f"the charts disagree on appVersion: {versions}")
    return next(iter(versions.values()))


def reference(name: str, version: str) -> str:
    """The image reference of ``name``: the charts' default repository, the appVersion as tag."""
    return f"{REGISTRY}/{name}:{version}"


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


# -- private container settings ---------------------------------------------------------------------


def container_env(cache: Path) -> dict[str, str]:
    """The environment for podman, buildah and skopeo: private settings only, written into ``cache``.

    runc, because crun refuses the hybrid cgroup layout of these machines; cgroupfs, as there is no
    systemd; ulimits at the hard limits, which even root cannot raise (podman's default nofile would).
    """
    config = cache / "containers"
    config.mkdir(parents=True, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    files = {
        "containers.conf": (
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{cache / "run" / "libpod"}"\n'
        ),
        "storage.conf": (
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{cache / "storage"}"\n'
            f'runroot = "{cache / "run" / "storage"}"\n'
        ),
        # No search registries and no short names: nothing is ever pulled by accident.
        "registries.conf": 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
        "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n",
    }
    for name, text in files.items():
        path = config / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    tmp = cache / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        **os.environ,
        "CONTAINERS_CONF": str(config / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(config / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(config / "registries.conf"),
        "ESI_IMAGES_POLICY": str(config / "policy.json"),
        "TMPDIR": str(tmp),
        "BUILDAH_ISOLATION": "oci",
    }


def policy_args(env: Mapping[str, str]) -> list[str]:
    """buildah's flag for the private signature policy (it reads no environment variable for it)."""
    return ["--signature-policy", env["ESI_IMAGES_POLICY"]]


# -- base images from mmdebstrap ---------------------------------------------------------------------


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


# -- wheels and the self-contained esi-cli ----------------------------------------------------------


def project_dependencies() -> list[str]:
    """The runtime requirements in pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def constraints(python: str) -> str:
    """The versions installed in the development venv: the images get the versions the tests ran with."""
    frozen = run([python, "-m", "pip", "list", "--format=freeze", "--exclude-editable"], capture=True)
    return "".join(sorted(line + "\n" for line in frozen.splitlines() if "==" in line))


def dependency_wheels(cache: Path, python: str) -> Path:
    """The dependencies' wheels (downloaded on the host), with their requirements file."""
    pinned = constraints(python)
    requirements = "".join(f"{line}\n" for line in project_dependencies())
    tag = run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture=True).strip()
    key = digest(pinned, requirements, tag, os.uname().machine)
    folder = cache / "wheels" / f"deps-{key}"
    prune(folder)
    if (folder / "requirements.txt").exists():
        return folder
    say("downloading the dependencies' wheels")
    partial = folder.with_name(folder.name + ".new")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "constraints.txt").write_text(pinned)
    (partial / "requested.txt").write_text(requirements)
    run(
        [python, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(partial),
         "--constraint", str(partial / "constraints.txt"), "--requirement", str(partial / "requested.txt")]
    )  # fmt: skip
    # Pin exactly what was downloaded, so that the build installs these files and nothing else.
    pins = sorted(_wheel_pin(path.name) for path in partial.glob("*.whl"))
    (partial / "requirements.txt").write_text("".join(f"{pin}\n" for pin in pins))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _wheel_pin(file_name: str) -> str:
    name, version = file_name.split("-")[:2]
    return f"{name}=={version}"


def app_packages() -> list[str]:
    """The top-level packages of the esi-federation wheel (pyproject.toml's package patterns)."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        patterns = tomllib.load(handle)["tool"]["setuptools"]["packages"]["find"]["include"]
    folders = [path.parent.name for path in ROOT.glob("*/__init__.py")]
    return sorted(name for name in folders if any(fnmatch.fnmatch(name, pattern) for pattern in patterns))


def app_sources() -> list[Path]:
    """What the esi-federation wheel is built from."""
    sources = [ROOT / "pyproject.toml", ROOT / "README.md"]
    for package in app_packages():
        sources += (path for path in (ROOT / package).rglob("*") if path.is_file())
    return [path for path in sources if "__pycache__" not in path.parts and path.suffix != ".pyc"]


def app_wheel(cache: Path, python: str) -> Path:
    """The wheel of esi-federation, built from the working tree (pip fetches setuptools on the host)."""
    key = files_digest(app_sources())
    folder = cache / "wheels" / f"app-{key}"
    prune(folder)
    if folder.is_dir() and any(folder.glob("*.whl")):
        return folder
    say("building the esi-federation wheel")
    partial = folder.with_name(folder.name + ".new")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    work = cache / "tmp" / f"wheel-{key}"
    shutil.rmtree(work, ignore_errors=True)
    # A copy of the sources, so that setuptools' build/ and egg-info stay out of the working tree.
    for path in app_sources():
        target = work / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(partial), str(work)]
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def esi_cli_bundle(cache: Path, python: str) -> Path:
    """The self-contained esi-cli (hack/build-esi-cli.sh), built when its inputs changed."""
    sources = [
        *(ROOT / "cli").glob("*.py"),
        ROOT / "hack" / "build-esi-cli.sh",
        ROOT / "hack" / "esi-cli-launcher.c",
    ]
    toolchain = run(
        [python, "-c", "import sys, PyInstaller; print(sys.version, PyInstaller.__version__)"], capture=True
    )
    key = digest(files_digest(sources), toolchain)
    folder = cache / "esi-cli" / f"bundle-{key}"
    prune(folder)
    if (folder / "esi-cli").exists():
        return folder
    say("building the self-contained esi-cli")
    partial = folder.with_name(folder.name + ".new")
    run([str(ROOT / "hack" / "build-esi-cli.sh"), str(partial)], {**os.environ, "PYTHON": python})
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def bundle_packages(bundle: Path, python: str) -> str:
    """Where the bundle's shared libraries come from: a Debian package of the build host, or the build's
    interpreter (libpython, which PyInstaller takes from the Python that ran it)."""
    libpython = run(
        [python, "-c", "import os, sysconfig as s; print(os.path.realpath(os.path.join("
         "s.get_config_var('LIBDIR'), s.get_config_var('INSTSONAME'))))"],
        capture=True,
    ).strip()  # fmt: skip
    lines = []
    for library in sorted((bundle / "_internal").glob("*.so*")):
        pattern = libpython if library.name.startswith("libpython") else f"*/{library.name}"
        found = subprocess.run(["dpkg-query", "-S", pattern], capture_output=True, text=True, check=False)
        owner = found.stdout.split(":", 1)[0] if found.returncode == 0 else ""
        if owner:
            version = run(["dpkg-query", "-W", "-f", "${Version}", owner], capture=True)
            lines.append(f"{owner} {version} ({library.name})\n")
        else:
            lines.append(f"not a Debian package: {pattern} ({library.name})\n")
    return "".join(sorted(set(lines)))


# -- building and exporting -------------------------------------------------------------------------


def stage_context(cache: Path, files: Mapping[str, Path]) -> Path:
    """A build context holding ``files`` (name in the context -> source), replaced on each build."""
    context = cache / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name, source in files.items():
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
    return context


def labels(name: str, version: str) -> list[str]:
    """OCI annotations of the image: source, version, licence, revision."""
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    values = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.description": DESCRIPTIONS[name],
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.licenses": LICENSE,
        "org.opencontainers.image.revision": revision or "unknown",
    }
    return [f"--label={key}={value}" for key, value in values.items()]


def buildah_build(
    env: Mapping[str, str],
    containerfile: Path,
    context: Path,
    name: str,
    *,
    version: str,
    args: Mapping[str, str],
) -> None:
    """Build one image from ``containerfile``, offline, with the layers cached."""
    argv = ["buildah", "build", *policy_args(env), "--layers", "--pull=never", "--network=none", "--quiet"]
    argv += ["--file", str(containerfile), "--tag", reference(name, version), *labels(name, version)]
    argv += [f"--build-arg={key}={value}" for key, value in args.items()]
    if containerfile.name == "Containerfile.server":
        argv += ["--target", name]
    run([*argv, str(context)], env, capture=True)


def export(env: Mapping[str, str], name: str, version: str, output: Path) -> bool:
    """Write the image as an OCI archive whose reference is the full image name; False when the archive
    already holds this very image (it is only touched, so that it counts as up to date)."""
    archive, packages, stamp = output / f"{name}.tar", output / f"{name}.packages.txt", output / f".{name}.id"
    ref = reference(name, version)
    image_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", ref], env, capture=True).strip()
    if archive.exists() and packages.exists() and stamp.exists() and stamp.read_text() == image_id:
        archive.touch()
        packages.touch()
        return False
    partial = output / f"{name}.tar.new"
    partial.unlink(missing_ok=True)
    target = f"oci-archive:{partial}:{ref}"
    run(["buildah", "push", *policy_args(env), "--quiet", ref, target], env, capture=True)
    partial.rename(archive)
    stamp.write_text(image_id)
    return True


def python_packages(env: Mapping[str, str], name: str, version: str) -> str:
    """The Python distributions in a server image's venv, read by the image's own interpreter."""
    script = (
        "import importlib.metadata as m\n"
        "for d in sorted(m.distributions(), key=lambda d: d.metadata['Name'].lower()):\n"
        "    print(d.metadata['Name'], d.version, d.metadata.get('License-Expression') or '')\n"
    )
    return run(
        ["podman", "run", "--rm", "--network=none", "--read-only",
         "--entrypoint", "/opt/esi-federation/bin/python", reference(name, version), "-c", script],
        env, capture=True,
    )  # fmt: skip


def write_packages(output: Path, name: str, sections: Mapping[str, str]) -> None:
    """build/images/NAME.packages.txt: what the image is made of, one section per source."""
    text = "".join(f"# {title}\n{body.rstrip()}\n\n" for title, body in sections.items())
    (output / f"{name}.packages.txt").write_text(text)


def working_containers(env: Mapping[str, str]) -> set[str]:
    """The ids of buildah's working containers in the private storage."""
    return set(run(["buildah", "containers", "--quiet"], env, capture=True).split())


def build(names: Sequence[str], output: Path) -> None:
    """Build ``names`` into ``output``, leaving no working container behind."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    env = container_env(cache)
    before = working_containers(env)
    try:
        build_images(names, output, cache, env)
    finally:
        # buildah 1.28 keeps the working container of a stage that only serves COPY --from.
        for leftover in working_containers(env) - before:
            subprocess.run(["buildah", "rm", leftover], env=dict(env), capture_output=True, check=False)


def build_images(names: Sequence[str], output: Path, cache: Path, env: Mapping[str, str]) -> None:
    """The steps of ``build``."""
    version = app_version()
    python = sys.executable
    suite = host_suite()

    builder_tar, builder_list = rootfs(cache, "builder", suite)
    builder = base_image(env, builder_tar, "builder")

    servers = [name for name in names if name != "esi-init"]
    if servers:
        runtime_tar, runtime_list = rootfs(cache, "runtime", suite)
        runtime = base_image(env, runtime_tar, "runtime")
        deps, app = dependency_wheels(cache, python), app_wheel(cache, python)
        context = stage_context(
            cache,
            {"wheels/deps": deps, "wheels/app": app, "slim.py": IMAGES_DIR / "slim.py",
             "passwd": IMAGES_DIR / "passwd", "group": IMAGES_DIR / "group"},
        )  # fmt: skip
        for name in servers:
            say(f"building {reference(name, version)}")
            args = {"BUILDER": builder, "RUNTIME": runtime}
            buildah_build(env, IMAGES_DIR / "Containerfile.server", context, name, version=version, args=args)
            if export(env, name, version, output):
                write_packages(
                    output,
                    name,
                    {"Debian packages (runtime root filesystem)": runtime_list.read_text(),
                     "Python distributions (/opt/esi-federation)": python_packages(env, name, version)},
                )  # fmt: skip

    if "esi-init" in names:
        bundle = esi_cli_bundle(cache, python)
        context = stage_context(
            cache,
            {"esi-cli": bundle, "passwd": IMAGES_DIR / "passwd", "group": IMAGES_DIR / "group"},
        )
        say(f"building {reference('esi-init', version)}")
        args = {"BUILDER": builder}
        buildah_build(env, IMAGES_DIR / "Containerfile.init", context, "esi-init", version=version, args=args)
        export(env, "esi-init", version, output)
        toolchain = run([python, "-c", "import sys, PyInstaller; print('python', sys.version.split()[0]); "
                         "print('pyinstaller', PyInstaller.__version__)"], capture=True)  # fmt: skip
        ca_line = next(
            line for line in builder_list.read_text().splitlines() if line.startswith("ca-certificates ")
        )
        write_packages(
            output,
            "esi-init",
            {"Debian packages of the libraries in /opt/esi-cli/_internal (from the build host)":
                 bundle_packages(bundle, python),
             "Build toolchain of esi-cli": toolchain,
             "Debian packages (CA bundle at /usr/lib/ssl/cert.pem)": ca_line},
        )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, build, report the archives."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(NAMES) + " (default: all)")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "images")
    options = parser.parse_args(argv)
    names = options.names or list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    started = time.monotonic()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        # One build at a time per cache: a second one (another test worker, another shell) waits, then
        # finds everything cached.
        with (cache / "build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            build(names, options.output)
    except BuildError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for name in names:
        archive = options.output / f"{name}.tar"
        say(f"{archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    say(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
