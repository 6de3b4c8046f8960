"""esi-cli runs in every injected pod's init container: it must start without heavy imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers_run import ESI_CLI, REPO_ROOT
from tests.cli.helpers_stub_federation import StubFederation

# The server side's libraries: none may load in esi-cli, not even indirectly.
FORBIDDEN = {"flask", "werkzeug", "hvac", "jwt", "kubernetes", "cryptography", "requests", "yaml", "urllib3"}
# Standard-library modules that cost milliseconds and that esi-cli avoids or loads only when needed.
AVOIDED = {"dataclasses", "inspect", "typing", "logging", "shutil", "tempfile", "http", "email", "urllib",
           "urllib3", "ipaddress", "threading"}  # fmt: skip
# Loaded only for --help, usage errors and the rarer command-line forms (cli/arguments.py).
PARSER = {"argparse", "gettext", "locale"}
# Loaded only once a request is made.
NETWORK = {"ssl", "socket"}


def imported_by(argv: list[str]) -> set[str]:
    """Top-level package names of every module that ``python -X importtime ARGV`` imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, flags=re.MULTILINE)
    assert names, done.stderr
    return {name.split(".")[0] for name in names}


def imported_after_site(argv: list[str]) -> set[str]:
    """Like ``imported_by``, minus what the interpreter itself loads for ``-c pass`` (site, .pth hooks)."""
    return imported_by(argv) - imported_by(["-c", "pass"])


def test_importing_cli_main_loads_no_heavy_module() -> None:
    loaded = imported_after_site(["-c", "import cli.main"])

    assert "cli" in loaded
    assert loaded & FORBIDDEN == set()
    assert loaded & AVOIDED == set()
    assert loaded & NETWORK == set()
    assert loaded & PARSER == set()


def test_esi_cli_version_loads_no_heavy_module() -> None:
    loaded = imported_after_site([str(ESI_CLI), "version"])

    assert "cli" in loaded
    assert loaded & (FORBIDDEN | AVOIDED | NETWORK | PARSER) == set()


def test_a_whole_fetch_loads_only_the_standard_library_it_needs(
    stub: StubFederation, connect_args: list[str]
) -> None:
    loaded = imported_after_site(
        [str(ESI_CLI), "fetch", *connect_args, "--file", "x=vault-prod:api-keys.service-a-token"]
    )

    assert {"ssl", "socket", "json"} <= loaded
    assert loaded & (FORBIDDEN | AVOIDED | PARSER) == set()


def test_help_comes_from_argparse() -> None:
    loaded = imported_after_site([str(ESI_CLI), "fetch", "--help"])

    assert "argparse" in loaded


def test_the_cli_package_imports_only_the_standard_library() -> None:
    source = "\n".join(path.read_text() for path in (REPO_ROOT / "cli").glob("*.py"))
    modules = set(re.findall(r"^\s*(?:from|import) ([\w.]+)", source, flags=re.MULTILINE))
    third_party = {name for name in modules if name.split(".")[0] not in sys.stdlib_module_names}

    assert {name for name in third_party if not name.startswith("cli")} == set()
    assert Path(ESI_CLI).exists()
