"""``make images``: build the three OCI archives in build/images/ (docs/images.md).

No base image comes from a registry: the root filesystems are made by mmdebstrap from the Debian mirror
that the machine's apt already uses, wheels are downloaded on the host, and the builds run with
``--network none``. Every podman/buildah setting is private to these builds (``CONTAINERS_*`` variables
pointing at files in the cache); nothing under /etc is read for configuration or changed.

What is slow is cached under ~/.cache/esi-federation/images (``ESI_IMAGES_CACHE`` overrides), keyed by
its inputs: the root filesystems, the wheels, the self-contained esi-cli, and buildah's layers.

Usage: python -m images.build [--output DIR] [NAME ...]     (NAME: esi-federation esi-webhook esi-init)
"""

from __future__ import annotations

import argparse
import fcntl
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hack.esi_cli_bundle import default_python
from images.common import ROOT, BuildError, cache_dir, run, say
from images.containers import container_env, policy_args, working_containers
from images.inputs import app_wheel, bundle_packages, bundle_toolchain, dependency_wheels, esi_cli_bundle
from images.rootfs import base_image, host_suite, rootfs

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
        bundled_python = default_python()
        toolchain = bundle_toolchain(bundled_python)
        bundle = esi_cli_bundle(cache, bundled_python, toolchain)
        context = stage_context(
            cache,
            {"esi-cli": bundle, "passwd": IMAGES_DIR / "passwd", "group": IMAGES_DIR / "group"},
        )
        say(f"building {reference('esi-init', version)}")
        args = {"BUILDER": builder}
        buildah_build(env, IMAGES_DIR / "Containerfile.init", context, "esi-init", version=version, args=args)
        export(env, "esi-init", version, output)
        ca_line = next(
            line for line in builder_list.read_text().splitlines() if line.startswith("ca-certificates ")
        )
        write_packages(
            output,
            "esi-init",
            {"Debian packages of the libraries in /opt/esi-cli/_internal (from the build host)":
                 bundle_packages(bundle, bundled_python),
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
