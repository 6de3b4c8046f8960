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


def site_packages(venv: Path) -> Path:
    """The venv's only site-packages folder."""
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def compile_tree(path: Path) -> None:
    """Compile every module under ``path``; fail the build if one does not compile."""
    ok = compileall.compile_dir(
        str(path),
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        sys.exit(f"slim: compiling {path} failed")


def slim_deps(venv: Path) -> None:
    """Remove the unused parts of the dependencies, then compile them."""
    site = site_packages(venv)
    for relative in UNUSED:
        shutil.rmtree(site / relative)
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
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "uninstall", "--quiet", "--yes", "pip", "setuptools"],
        check=True,
    )
    for leftover in [*venv.glob("bin/pip*"), *venv.glob("bin/Activate.ps1")]:
        leftover.unlink()


def main() -> None:
    """``slim.py deps|app VENV``."""
    step, venv = sys.argv[1], Path(sys.argv[2])
    {"deps": slim_deps, "app": slim_app}[step](venv)


if __name__ == "__main__":
    main()
