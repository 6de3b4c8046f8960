"""Trim the image's venv and compile it, inside the build (images/Containerfile.server).

``slim.py deps VENV``: after the dependencies are installed, remove what the servers never import (see
UNUSED) and compile the rest. ``slim.py app VENV``: after esi-federation itself is installed, compile it
and remove pip and setuptools, so that the image has no installer.

The ``.pyc`` files use unchecked hashes: the image is read-only, so Python never needs to compare them
with their sources, and a start-up never pays for compiling (which a read-only root could not cache).
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

# Parts of dependencies that nothing in federation/ or webhook/ imports. kubernetes/aio is an asyncio
# copy of the whole generated client (about half of the package); the servers use the synchronous
# client's ApiClient and config loaders only.
UNUSED = ("kubernetes/aio",)
# Distributions that only kubernetes/aio imports (kubernetes requires them all the same).
UNUSED_DISTRIBUTIONS = (
    "aiohttp", "aiohttp-retry", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict",
    "propcache", "yarl",
)  # fmt: skip
# The generated API and model classes of the kubernetes client: imported (all of them, by
# kubernetes.client), never read. Only their .pyc files are kept, in place of the sources, which
# halves the package; a traceback inside them shows no source line.
SOURCELESS = ("kubernetes/client/api", "kubernetes/client/models")


def site_packages(venv: Path) -> Path:
    """The venv's only site-packages folder."""
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def compile_tree(path: Path, legacy: bool = False) -> None:
    """Compile every module under ``path`` (``legacy``: module.pyc beside module.py); fail the build if
    one does not compile."""
    ok = compileall.compile_dir(
        str(path),
        quiet=1,
        workers=0,
        legacy=legacy,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        sys.exit(f"slim: compiling {path} failed")


def pip(venv: Path, *argv: str) -> None:
    """The venv's pip."""
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--quiet", *argv], check=True)


def slim_deps(venv: Path) -> None:
    """Remove the unused parts of the dependencies, then compile them."""
    site = site_packages(venv)
    for relative in UNUSED:
        shutil.rmtree(site / relative)
    pip(venv, "uninstall", "--yes", *UNUSED_DISTRIBUTIONS)
    for relative in SOURCELESS:
        compile_tree(site / relative, legacy=True)
        for source in (site / relative).rglob("*.py"):
            source.unlink()
    compile_tree(site)


def app_packages(site: Path) -> set[str]:
    """The top-level packages that the esi-federation wheel installed."""
    (record,) = site.glob("esi_federation-*.dist-info/RECORD")
    names = {line.split("/", 1)[0] for line in record.read_text().splitlines() if "/" in line}
    return {name for name in names if (site / name / "__init__.py").exists()}


def slim_app(venv: Path) -> None:
    """Compile the application's packages, then remove the installer."""
    site = site_packages(venv)
    for package in sorted(app_packages(site)):
        compile_tree(site / package)
    pip(venv, "uninstall", "--yes", "pip", "setuptools")
    for leftover in [*venv.glob("bin/pip*"), *venv.glob("bin/Activate.ps1")]:
        leftover.unlink()


def main() -> None:
    """``slim.py deps|app VENV``."""
    step, venv = sys.argv[1], Path(sys.argv[2])
    {"deps": slim_deps, "app": slim_app}[step](venv)


if __name__ == "__main__":
    main()
