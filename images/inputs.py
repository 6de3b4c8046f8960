"""What goes into the images besides Debian's packages: wheels downloaded and built on the host, and the
self-contained esi-cli (hack/build-esi-cli.sh)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

from hack.esi_cli_bundle import build_inputs
from images.common import ROOT, digest, files_digest, prune, run, say


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


def bundle_toolchain(python: str) -> str:
    """What builds the self-contained esi-cli (hack/esi_cli_bundle.py): the Python whose standard library
    and libpython it carries, the compiler of its embedded interpreter and musl's, of its launcher."""
    version = run([python, "-c", "import sys; print(sys.version.split()[0])"], capture=True).strip()
    gcc = run(["gcc", "-dumpfullversion"], capture=True).strip()
    musl = run(["dpkg-query", "-W", "-f", "${Version}", "musl-tools"], capture=True).strip()
    return f"python {version}\ngcc {gcc}\nmusl-tools {musl}\n"


def esi_cli_bundle(cache: Path, python: str, toolchain: str) -> Path:
    """The self-contained esi-cli (hack/build-esi-cli.sh), built when its inputs or ``toolchain``
    (:func:`bundle_toolchain`) changed."""
    key = digest(files_digest(build_inputs(ROOT)), toolchain)
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


# The shared and the static libpython of the Python that runs this.
_LIBPYTHON_FILES = """
import os, sysconfig
def file(folder, name):
    value = sysconfig.get_config_var
    return os.path.realpath(os.path.join(value(folder), value(name) or ""))
print(file("LIBDIR", "INSTSONAME"), file("LIBPL", "LIBRARY"))
"""


def bundle_packages(bundle: Path, python: str) -> str:
    """Where the bundle's libraries come from: a Debian package of the build host, or the build's
    interpreter (libpython, shared or linked into the program, is the Python's that built it)."""
    shared, static = run([python, "-c", _LIBPYTHON_FILES], capture=True).split()
    libraries = {library.name: f"*/{library.name}" for library in (bundle / "_internal").glob("*.so*")}
    for name in list(libraries):
        if name.startswith("libpython"):
            libraries[name] = shared
    if not any(name.startswith("libpython") for name in libraries):
        libraries[f"{Path(static).name}, linked into _internal/esi-cli"] = static
    lines = []
    for name, pattern in sorted(libraries.items()):
        found = subprocess.run(["dpkg-query", "-S", pattern], capture_output=True, text=True, check=False)
        owner = found.stdout.split(":", 1)[0] if found.returncode == 0 else ""
        if owner:
            version = run(["dpkg-query", "-W", "-f", "${Version}", owner], capture=True)
            lines.append(f"{owner} {version} ({name})\n")
        else:
            lines.append(f"not a Debian package: {pattern} ({name})\n")
    return "".join(sorted(set(lines)))
