"""Imports point downward: the pure cores load no web framework, Vault or Kubernetes client, the
configuration package imports nothing of Kubernetes I/O, the stores or the key fetcher, and no module
of ``federation/`` imports itself back through another (docs/architecture.md, "Rooms")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "federation"
HEAVY = ["flask", "werkzeug", "gunicorn", "hvac", "kubernetes", "requests", "urllib3", "prometheus_client"]
PURE = ["federation.tokens", "federation.authz", "federation.config.model", "federation.config.parse"]


def loaded_after_import(*modules: str) -> list[str]:
    """Which HEAVY modules a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return json.loads(done.stdout)


def imports() -> dict[str, set[str]]:
    """Every federation module and the federation modules it imports, at the top or inside a function."""
    names = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {other for other in found if other in names and other != name}
    return graph


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("module", PURE)
def test_the_pure_cores_load_no_web_framework_vault_or_kubernetes_client(module: str) -> None:
    assert loaded_after_import(module) == []


def test_the_configuration_package_imports_no_kubernetes_io_store_or_key_fetcher() -> None:
    upward = {
        (module, imported)
        for module, targets in imports().items()
        if module.startswith("federation.config")
        for imported in targets
        if imported.startswith(("federation.kube", "federation.stores", "federation.jwks"))
    }
    assert upward == set()


def test_no_module_imports_itself_back() -> None:
    graph = imports()
    cycles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    cycles.append(path)
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert cycles == []


def test_the_key_source_is_an_interface_the_verifier_does_not_fetch_through() -> None:
    assert "federation.jwks" not in imports()["federation.tokens"]
    assert "federation.pinned_https" not in imports()["federation.tokens"]
