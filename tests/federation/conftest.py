"""Fixtures of the federation server's tests.

``shared_stack`` is one running server per test module, for tests that only read: starting and stopping
a stack costs about half a second, and most tests need no configuration of their own. It also serves a
second store and a second, pattern-limited Authorization. Tests that change the configuration use the
function-scoped ``federation_stack`` (tests/conftest.py) or ``running_stack`` with their own settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.stack import FederationStack, authorization, fake_store, running_stack

TEAM_READER = "system:serviceaccount:monitoring:team-a-reader"


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    """A read-only server: the seed plus ``vault-staging`` and ``team-store`` (``team-a/*`` granted)."""
    with running_stack(tmp_path_factory.mktemp("shared")) as stack:
        since = stack.reload_count()
        stack.write(
            "extra.yaml",
            fake_store(
                "vault-staging", {"db-credentials": {"password": "staging-" + stack.values["password"]}}
            ),
            fake_store(
                "team-store",
                {
                    "team-a/db": {"password": "team-a-" + stack.values["password"]},
                    "team-a/deep/cache": {"password": "team-a-cache-" + stack.values["password"]},
                    "team-b/db": {"password": "team-b-" + stack.values["password"]},
                },
            ),
            authorization(
                "allow-alpha-team-a",
                TEAM_READER,
                stores=["team-store"],
                allowed_secrets=["team-a/*"],
            ),
        )
        stack.wait_for_reload(since)
        assert json.dumps(sorted(stack.app.extensions["esi.service"].holder.current.stores)) == json.dumps(
            ["team-store", "vault-prod", "vault-staging"]
        )
        yield stack
