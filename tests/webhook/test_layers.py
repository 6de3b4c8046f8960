"""Imports point downward: the pure cores load no web framework, and only serving loads gunicorn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["flask", "werkzeug", "gunicorn", "prometheus_client", "jsonpatch", "yaml"]


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


def test_the_pure_cores_load_no_web_framework() -> None:
    cores = (
        "webhook.annotations",
        "webhook.mutation",
        "webhook.patches",
        "webhook.reviews",
        "webhook.admission",
    )
    assert loaded_after_import(*cores) == []


@pytest.mark.parametrize("module", ["webhook.main", "webhook.app"])
def test_gunicorn_is_loaded_only_to_serve(module: str) -> None:
    assert "gunicorn" not in loaded_after_import(module)
