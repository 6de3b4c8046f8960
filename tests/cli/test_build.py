"""The self-contained esi-cli (hack/build-esi-cli.sh) works without the venv.

The images tests (tests/images/) run the same folder in images without glibc; here it runs on the host.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers_run import REPO_ROOT, run_process, stub_value
from tests.cli.helpers_stub_federation import StubFederation

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("esi-cli-build")]

# The environment the child was started with: /proc/self/environ, because the child's own Python may
# change os.environ at start-up (it sets LC_CTYPE when it coerces a missing locale).
CHILD = """
import json, os, sys
with open("/proc/self/environ", "rb") as environ:
    names = sorted(entry.split(b"=", 1)[0].decode() for entry in environ.read().split(b"\\0") if entry)
with open(sys.argv[1], "w") as handle:
    json.dump({"value": os.environ.get("SERVICE_A_TOKEN"), "names": names}, handle)
"""


PT_INTERP = 3


def program_header_types(elf: bytes) -> list[int]:
    """The ``p_type`` of each program header of a 64-bit little-endian ELF file."""
    offset, size, count = struct.unpack_from("<Q", elf, 0x20)[0], *struct.unpack_from("<HH", elf, 0x36)
    return [struct.unpack_from("<I", elf, offset + index * size)[0] for index in range(count)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the bundle once for this module, into a temporary folder."""
    output = tmp_path_factory.mktemp("build") / "esi-cli"
    done = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-esi-cli.sh"), str(output)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={name: value for name, value in os.environ.items() if name != "PYTHON"},  # the shipped build
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return output


def test_the_bundle_prints_its_version_without_any_python_environment(bundle: Path) -> None:
    run = run_process([str(bundle / "esi-cli"), "version"], {})

    assert run.exit_code == 0
    assert run.stdout == "esi-cli 0.1.0\n"


def test_the_bundle_carries_its_c_library_and_a_static_launcher(bundle: Path) -> None:
    contents = {path.name for path in (bundle / "_internal").iterdir()}
    launcher = (bundle / "esi-cli").read_bytes()

    assert {"esi-cli", "libc.so.6", "libz.so.1", "libssl.so.3"} <= contents
    assert any(name.startswith("ld-") for name in contents)
    assert launcher[:4] == b"\x7fELF"
    assert PT_INTERP not in program_header_types(launcher)  # static: needs no loader from the image


def test_the_shipped_bundle_has_debian_s_libpython_linked_into_its_program(bundle: Path) -> None:
    program = bundle / "_internal" / "esi-cli"
    exported = subprocess.run(
        ["nm", "-D", "--defined-only", str(program)], capture_output=True, text=True, check=True
    ).stdout.split()

    assert not list((bundle / "_internal").glob("libpython*"))
    assert "PyType_Ready" in exported  # the extension modules find the C API in the program itself
    assert "Py_InitializeFromConfig" in exported


def test_the_bundle_holds_compiled_modules_of_cli_and_the_standard_library_only(bundle: Path) -> None:
    library = bundle / "_internal" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    top_level = {path.name.removesuffix(".pyc") for path in library.iterdir()}

    assert {"cli", "ssl", "json", "argparse", "encodings", "lib-dynload"} <= top_level
    assert not {"flask", "werkzeug", "jwt", "hvac", "federation", "webhook", "site-packages"} & top_level
    assert not list(library.rglob("*.py"))  # sources stay out: the modules are compiled


def test_a_running_bundle_is_named_esi_cli_not_after_its_loader(
    bundle: Path, token_file: Path, secrets_dir: Path
) -> None:
    # A server that accepts the connection and never answers holds esi-cli where ps would see it.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        process = subprocess.Popen(
            [str(bundle / "esi-cli"), "fetch", "--server", f"https://127.0.0.1:{listener.getsockname()[1]}",
             "--token-file", str(token_file), "--dir", str(secrets_dir), "--timeout", "30s",
             "--file", "t=vault-prod:api-keys.service-a-token"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            listener.settimeout(30)
            connection, _ = listener.accept()
            with connection:
                name = Path(f"/proc/{process.pid}/comm").read_text().strip()
        finally:
            process.kill()
            process.wait()

    assert name == "esi-cli"


def test_the_bundle_fetches_files(
    bundle: Path, stub: StubFederation, connect_args: list[str], secrets_dir: Path
) -> None:
    run = run_process(
        [str(bundle / "esi-cli"), "fetch", *connect_args, "--file", "t=vault-prod:api-keys.service-a-token"]
    )

    assert run.exit_code == 0, run.stderr
    matches = (secrets_dir / "t").read_text() == stub_value(stub, "api-keys", "service-a-token")
    assert matches


def test_the_bundle_execs_with_env_vars(
    bundle: Path, stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "child.json"

    run = run_process(
        [str(bundle / "esi-cli"), "exec", *connect_args,
         "--env", "SERVICE_A_TOKEN=vault-prod:api-keys.service-a-token",
         "--", sys.executable, "-c", CHILD, str(out)]
    )  # fmt: skip

    assert run.exit_code == 0, run.stderr
    child = json.loads(out.read_text())
    matches = child["value"] == stub_value(stub, "api-keys", "service-a-token")
    assert matches
    # Nothing of the bundle's own start-up reaches the app: no LD_LIBRARY_PATH, and no LC_CTYPE, which
    # `python` itself would set when it coerces a missing locale to C.UTF-8.
    assert child["names"] == ["PATH", "SERVICE_A_TOKEN"]


def test_the_bundle_installs_itself_into_the_bin_dir(
    bundle: Path, stub: StubFederation, connect_args: list[str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "esi-bin"

    run = run_process(
        [str(bundle / "esi-cli"), "fetch", *connect_args, "--file", "t=vault-prod:api-keys.service-a-token"],
        {"ESI_BIN_DIR": str(bin_dir)},
    )

    assert run.exit_code == 0, run.stderr
    copied = run_process([str(bin_dir / "esi-cli"), "version"], {})
    assert copied.stdout == "esi-cli 0.1.0\n"
