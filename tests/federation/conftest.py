"""Fixtures of the federation server's tests.

``shared_stack`` is one running server per test module, for tests that only read: starting and stopping
a stack costs about half a second, and most tests need no configuration of their own. It also serves a
second store and a second, pattern-limited Authorization. Tests that change the configuration use the
function-scoped ``federation_stack`` (tests/conftest.py) or ``running_stack`` with their own settings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.federation.helpers_requests import SECRETS_READER, TEAM_READER
from tests.helpers_stack import FederationStack, authorization, fake_store, running_stack


def _kubernetes_store_documents(password: str) -> list[dict[str, Any]]:
    """ESO's kubernetes provider over Secrets of namespace apps: one readable, one not UTF-8."""
    store = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": "cluster-secrets"},
        "spec": {"provider": {"kubernetes": {"remoteNamespace": "apps"}}},
    }
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "apps"},
            "data": {key: base64.b64encode(value).decode()},
        }
        for name, key, value in (
            ("plain", "token", f"k8s-{password}".encode()),
            ("binary", "blob", b"\xff\xfe"),
        )
    ]
    return [store, *secrets, authorization("allow-k8s-reader", SECRETS_READER, stores=["cluster-secrets"])]


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
            *_kubernetes_store_documents(stack.values["password"]),
        )
        stack.wait_for_reload(since)
        assert json.dumps(sorted(stack.app.extensions["esi.service"].holder.current.stores)) == json.dumps(
            ["cluster-secrets", "team-store", "vault-prod", "vault-staging"]
        )
        yield stack
