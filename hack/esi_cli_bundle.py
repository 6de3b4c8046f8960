"""Build the self-contained esi-cli folder: ``python -m hack.esi_cli_bundle OUTPUT_DIR``.

``hack/build-esi-cli.sh`` is the documented command. The bundled Python is Debian's ``python3`` where it
exists (``--python`` chooses another), and the build runs under it. The folder runs in any Linux image
of the same architecture, with no glibc, no zlib and no Python there (docs/images.md explains the
layout and why):

    esi-cli                          the static launcher (hack/esi-cli-launcher.c, musl-gcc -static)
    _internal/esi-cli                CPython embedded with a fixed configuration (hack/esi-cli-python.c)
    _internal/lib/python3.11/        the compiled modules esi-cli imports: cli/ and the standard library
    _internal/lib/python3.11/lib-dynload/   their extension modules
    _internal/*.so*                  OpenSSL, the C library, its loader, ... (libpython when not linked in)

Only what ``cli`` can import is taken: ``modulefinder`` follows every import statement of ``cli/*.py``
(those inside functions too) through the standard library. A module of ``cli`` that imports anything
outside the standard library fails the build: esi-cli must not need a third-party package.
"""

from __future__ import annotations

import argparse
import modulefinder
import os
import py_compile
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER_SOURCE = ROOT / "hack" / "esi-cli-launcher.c"
PROGRAM_SOURCE = ROOT / "hack" / "esi-cli-python.c"
CONTENTS = "_internal"
PROGRAM = "esi-cli"
# Never imported by esi-cli, but reachable through rarely used corners of modules it imports (pydoc
# through inspect's helpers, tkinter through turtle-style demos): they would only make the folder larger.
EXCLUDED = ("tkinter", "unittest", "pydoc", "pydoc_data", "test", "idlelib", "lib2to3", "ensurepip",
            "distutils", "decimal", "_pydecimal", "doctest", "pdb", "turtle", "turtledemo")  # fmt: skip
# Whatever decodes bytes by encoding name (socket's IDNA host names, file names, the locale) looks
# codecs up at run time, where no import statement shows it: every codec goes in.
ALWAYS = ("encodings",)


# Debian's python3 is built with PGO and LTO and (with python3-dev) ships a static libpython: the
# bundle built from it is the cheapest to start (docs/performance.md). Elsewhere: the running Python.
DEBIAN_PYTHON = Path("/usr/bin/python3")


class BuildError(Exception):
    """The bundle cannot be built; the message says what is missing."""


def default_python() -> str:
    """The Python whose standard library and libpython the bundle carries, unless ``--python`` says."""
    return str(DEBIAN_PYTHON) if DEBIAN_PYTHON.is_file() else sys.executable


def build_inputs(root: Path = ROOT) -> list[Path]:
    """The files a bundle is built from, besides the toolchain: when one changes, the bundle is stale."""
    hack = root / "hack"
    build = ("build-esi-cli.sh", "esi_cli_bundle.py", LAUNCHER_SOURCE.name, PROGRAM_SOURCE.name)
    return [*sorted((root / "cli").glob("*.py")), *(hack / name for name in build)]


def stdlib_paths() -> tuple[Path, Path]:
    """The running interpreter's standard library and its extension-module folder."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return stdlib, Path(sysconfig.get_config_var("DESTSHARED") or stdlib / "lib-dynload")


def find_modules(cli_dir: Path, stdlib: Path, dynload: Path) -> dict[str, Path]:
    """Module name -> file (``.py`` or extension ``.so``) of everything ``cli`` can import."""
    finder = modulefinder.ModuleFinder(
        path=[str(cli_dir.parent), str(stdlib), str(dynload)], excludes=EXCLUDED
    )
    for source in sorted(cli_dir.glob("*.py")):
        finder.import_hook("cli" if source.stem == "__init__" else f"cli.{source.stem}")
    for name in ALWAYS:
        finder.import_hook(name)
        for source in sorted((stdlib / name).glob("*.py")):
            if source.stem != "__init__":
                finder.import_hook(f"{name}.{source.stem}")
    outside = sorted(
        f"{name} (imported by {', '.join(sorted(importers))})"
        for name, importers in finder.badmodules.items()
        if any(importer == "cli" or importer.startswith("cli.") for importer in importers)
        and not _is_submodule_name(name, finder.modules)
    )
    if outside:
        raise BuildError("esi-cli imports modules the standard library does not have: " + "; ".join(outside))
    return {name: Path(module.__file__) for name, module in finder.modules.items() if module.__file__}


def _is_submodule_name(name: str, found: Iterable[str]) -> bool:
    # `from os import path` is recorded as a missing module "os.path" although it is an attribute of os.
    package = name.rpartition(".")[0]
    return bool(package) and package in found


def write_modules(modules: dict[str, Path], library: Path, dynload: Path) -> None:
    """Compile every Python module into ``library`` (no sources) and copy extension modules."""
    dynload.mkdir(parents=True, exist_ok=True)
    for name, source in sorted(modules.items()):
        if source.suffix == ".so":
            shutil.copy2(source, dynload / source.name)
            continue
        if source.suffix != ".py":
            continue
        relative = Path(*name.split("."))
        relative = relative / "__init__.py" if source.name == "__init__.py" else relative.with_suffix(".py")
        target = (library / relative).with_suffix(".pyc")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Sourceless modules: Python loads them without looking for a .py, and never writes a cache.
        py_compile.compile(str(source), str(target), dfile=str(relative), doraise=True)


def compile_program(contents: Path, compiler: str, stdlib_name: str) -> Path:
    """The embedded interpreter: hack/esi-cli-python.c linked with this Python's libpython."""
    headers = Path(sysconfig.get_config_var("INCLUDEPY") or "")
    if not (headers / "Python.h").is_file():
        raise BuildError(f"{sys.executable} has no C headers in {headers} (Debian: apt install python3-dev)")
    program = contents / PROGRAM
    _run([compiler, "-O2", "-s", "-Wall", "-Wextra", "-Werror",
          f"-I{headers}", f'-DSTDLIB_NAME="{stdlib_name}"',
          "-o", str(program), str(PROGRAM_SOURCE),
          *libpython_link_arguments(sysconfig.get_config_vars())])  # fmt: skip
    return program


def libpython_link_arguments(config: Mapping[str, object]) -> list[str]:
    """How to link libpython, from a Python build's ``sysconfig`` variables.

    The static library when the build has one (Debian's python3-dev): linked into a program that is
    not position-independent, it needs no symbol relocations at start and no PLT or GOT indirection
    in the interpreter loop. Under a rollout storm that made each esi-cli ~20% cheaper than with a
    shared libpython (docs/performance.md). Extension modules find the C API in the program itself
    (``-export-dynamic``). Otherwise the shared library, which the folder then carries.
    """
    static = Path(str(config.get("LIBPL") or ""), str(config.get("LIBRARY") or ""))
    if static.suffix == ".a" and static.is_file():
        libraries = " ".join(str(config.get(name) or "") for name in ("LIBS", "SYSLIBS", "MODLIBS"))
        return ["-no-pie", "-Wl,--export-dynamic", str(static), *shlex.split(libraries)]
    if not config.get("Py_ENABLE_SHARED"):
        raise BuildError(f"{sys.executable} has neither a static nor a shared libpython")
    link_name = str(config.get("LDLIBRARY") or "").removeprefix("lib").split(".so")[0]
    return [f"-L{config.get('LIBDIR')}", f"-l{link_name}"]


def copy_libraries(contents: Path, elf_files: Sequence[Path]) -> str:
    """Copy every shared library the files load from outside the folder; return the loader's name."""
    found: dict[str, Path] = {}
    environment = {**os.environ, "LD_LIBRARY_PATH": str(sysconfig.get_config_var("LIBDIR"))}
    for elf in elf_files:
        for line in _run(["ldd", str(elf)], environment, check=False).splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("/"):
                found.setdefault(parts[0], Path(parts[2]))
            elif parts and parts[0].startswith("/") and "/ld-" in parts[0]:
                found.setdefault(Path(parts[0]).name, Path(parts[0]))
            elif len(parts) >= 3 and parts[2] == "not":
                raise BuildError(f"{elf.name} needs {parts[0]}, which is not found on this machine")
    loaders = [name for name in found if name.startswith("ld-")]
    if not loaders:
        raise BuildError(f"no dynamic loader found for {contents / PROGRAM}")
    libc = found.get("libc.so.6")
    # glibc loads libgcc_s itself, with dlopen, when a thread is cancelled: no ldd line names it.
    if libc is not None and (libc.parent / "libgcc_s.so.1").exists():
        found.setdefault("libgcc_s.so.1", libc.parent / "libgcc_s.so.1")
    for name, path in sorted(found.items()):
        shutil.copy2(path.resolve(), contents / name)
    return loaders[0]


def compile_launcher(bundle: Path, compiler: str, loader: str) -> None:
    """The static launcher that runs ``_internal/esi-cli`` through the bundle's own loader."""
    _run([compiler, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", str(bundle / PROGRAM),
          f'-DLOADER="{loader}"', str(LAUNCHER_SOURCE)])  # fmt: skip


def build(output: Path, compiler: str, static_compiler: str) -> Path:
    """Build the folder into ``output`` (replaced as a whole); return its executable."""
    stdlib, dynload = stdlib_paths()
    stdlib_name = stdlib.name
    with tempfile.TemporaryDirectory(prefix="esi-cli-bundle-") as work:
        bundle = Path(work) / "bundle"
        contents = bundle / CONTENTS
        library = contents / "lib" / stdlib_name
        write_modules(find_modules(ROOT / "cli", stdlib, dynload), library, library / "lib-dynload")
        program = compile_program(contents, compiler, stdlib_name)
        extensions = sorted((library / "lib-dynload").glob("*.so"))
        loader = copy_libraries(contents, [program, *extensions])
        # The Python build's own files come with their symbols: libpython is 23 MB with them, 4 without.
        _run(["strip", "--strip-unneeded", *map(str, extensions), *map(str, contents.glob("libpython*"))])
        compile_launcher(bundle, static_compiler, loader)
        _run([str(bundle / PROGRAM), "version"])  # the folder works before it replaces anything
        shutil.rmtree(output, ignore_errors=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(bundle), str(output))
    return output / PROGRAM


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None, *, check: bool = True) -> str:
    """Run a tool of the build; its output. A missing tool, or a failure when ``check``, is a BuildError."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} not found (hack/system-deps.sh installs the build's tools)") from None
    if check and done.returncode != 0:
        raise BuildError(
            f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    """Build the folder named on the command line; exit 1 with the reason when it cannot be built."""
    parser = argparse.ArgumentParser(prog="python -m hack.esi_cli_bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("output", type=Path, help="the folder to create (replaced when it exists)")
    parser.add_argument("--cc", default="gcc", help="compiler of the embedded interpreter (glibc)")
    parser.add_argument("--cc-static", default="musl-gcc", help="compiler of the static launcher")
    parser.add_argument(
        "--python", help=f"the Python to bundle (default: {DEBIAN_PYTHON} if present, else this one)"
    )
    options = parser.parse_args(argv)
    python = options.python or default_python()
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        # The standard library and libpython are the running interpreter's: build under the one asked for.
        rerun = [python, "-m", "hack.esi_cli_bundle", "--python", python, "--cc", options.cc,
                 "--cc-static", options.cc_static, str(options.output.resolve())]  # fmt: skip
        try:
            return subprocess.run(rerun, cwd=ROOT, check=False).returncode
        except FileNotFoundError:
            print(f"build-esi-cli: {python} not found", file=sys.stderr)
            return 1
    try:
        executable = build(options.output.resolve(), options.cc, options.cc_static)
    except BuildError as exc:
        print(f"build-esi-cli: {exc}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in executable.parent.rglob("*") if path.is_file())
    print(f"build-esi-cli: {executable} ({size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
