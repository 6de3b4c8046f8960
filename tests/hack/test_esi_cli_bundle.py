"""hack/esi_cli_bundle.py: which modules the self-contained esi-cli takes, and what stops the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from hack.esi_cli_bundle import (
    BuildError,
    build_inputs,
    compile_launcher,
    find_modules,
    libpython_link_arguments,
    main,
    stdlib_paths,
    write_modules,
)


def _package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "cli"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in modules.items():
        (package / f"{name}.py").write_text(text)
    return package


def test_imports_inside_functions_and_every_codec_are_taken(tmp_path: Path) -> None:
    package = _package(tmp_path, {"main": "import json\n\ndef later():\n    import shutil\n"})

    found = find_modules(package, *stdlib_paths())

    assert {"cli", "cli.main", "json", "shutil", "encodings.idna", "encodings.utf_8"} <= set(found)
    assert not {"tkinter", "unittest"} & set(found)


def test_a_module_outside_the_standard_library_stops_the_build(tmp_path: Path) -> None:
    package = _package(tmp_path, {"main": "import json\n", "client": "def get():\n    import requests\n"})

    with pytest.raises(BuildError, match=r"requests \(imported by cli\.client\)"):
        find_modules(package, *stdlib_paths())


def test_modules_are_written_compiled_without_their_sources(tmp_path: Path) -> None:
    package = _package(tmp_path, {"main": "import json\n"})
    library = tmp_path / "lib"

    write_modules(find_modules(package, *stdlib_paths()), library, library / "lib-dynload")

    assert (library / "cli" / "main.pyc").is_file()
    assert (library / "cli" / "__init__.pyc").is_file()
    assert (library / "json" / "__init__.pyc").is_file()
    assert not list(library.rglob("*.py"))
    assert any(path.name.startswith("_json.") for path in (library / "lib-dynload").iterdir())


def test_a_missing_build_tool_is_named_not_a_traceback() -> None:
    with pytest.raises(BuildError, match="esi-no-such-compiler not found"):
        compile_launcher(Path("/nonexistent"), "esi-no-such-compiler", "ld-linux-x86-64.so.2")


def test_the_inputs_of_a_bundle_are_cli_and_the_build_files_all_present() -> None:
    inputs = build_inputs()

    assert all(path.is_file() for path in inputs)
    assert {path.name for path in inputs} >= {"main.py", "build-esi-cli.sh", "esi-cli-python.c"}


def test_a_static_libpython_is_linked_into_a_program_that_exports_the_c_api(tmp_path: Path) -> None:
    (tmp_path / "libpython3.11.a").write_bytes(b"!<arch>\n")
    config = {"LIBPL": str(tmp_path), "LIBRARY": "libpython3.11.a", "LIBS": "-ldl", "SYSLIBS": "-lm",
              "MODLIBS": "-lz  -lexpat", "Py_ENABLE_SHARED": 1, "LDLIBRARY": "libpython3.11.so"}  # fmt: skip

    arguments = libpython_link_arguments(config)

    assert arguments == ["-no-pie", "-Wl,--export-dynamic", str(tmp_path / "libpython3.11.a"),
                         "-ldl", "-lm", "-lz", "-lexpat"]  # fmt: skip


def test_without_a_static_libpython_the_shared_one_is_linked(tmp_path: Path) -> None:
    config = {"LIBPL": str(tmp_path), "LIBRARY": "libpython3.11.a", "Py_ENABLE_SHARED": 1,
              "LDLIBRARY": "libpython3.11.so", "LIBDIR": "/opt/python/lib"}  # fmt: skip

    assert libpython_link_arguments(config) == ["-L/opt/python/lib", "-lpython3.11"]


def test_a_python_without_any_libpython_stops_the_build(tmp_path: Path) -> None:
    config = {"LIBPL": str(tmp_path), "LIBRARY": "libpython3.11.a", "Py_ENABLE_SHARED": 0}

    with pytest.raises(BuildError, match="neither a static nor a shared libpython"):
        libpython_link_arguments(config)


def test_a_python_that_does_not_exist_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--python", str(tmp_path / "python9"), str(tmp_path / "out")]) == 1
    assert f"{tmp_path / 'python9'} not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
