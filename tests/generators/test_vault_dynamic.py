"""VaultDynamicSecret against OpenBao's database engine and a real PostgreSQL: per-pod roles that can log
in, and that disappear when their owner asks, when a batch fails, when the pod is deleted, or at lease end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.errors import NotFound, StoreError
from federation.generators.pods import PodChecker
from federation.generators.revoker import Revoker
from hack.client_issuer import ClientClusterIssuer
from hack.openbao import OpenBao
from hack.postgres import Postgres
from tests.generators.helpers_dynamic import NAMESPACE, Stack, dynamic_roles, vault_generator

pytestmark = pytest.mark.slow

REVIEWER_TOKEN = "reviewer-token-of-the-federation"


@pytest.fixture
def stack(tmp_path: Path, openbao: OpenBao, postgres: Postgres) -> Iterator[Stack]:
    with ClientClusterIssuer(reviewer_token=REVIEWER_TOKEN) as cluster:
        made = Stack(openbao, cluster, tmp_path / "state", REVIEWER_TOKEN)
        made.add(vault_generator(openbao, "db", "database/creds/app"))
        made.add(vault_generator(openbao, "short", "database/creds/short"))
        yield made
        # Whatever a test left must not leak into the next one's role counts.
        leftover = made.credentials()
        leftover.revoke(made.configuration(), leftover.records(), "owner")


def login_user(postgres: Postgres, data: dict[str, str]) -> str:
    return postgres.psql("SELECT current_user", user=data["username"], password=data["password"])


def revoker(stack: Stack, interval: float) -> Revoker:
    credentials = stack.credentials()
    pods = PodChecker(stack.settings)
    assert credentials.store is not None
    return Revoker(
        stack.configuration, credentials, pods, stack.metrics, interval, is_leader=credentials.store.is_leader
    )


def test_a_pod_gets_its_own_database_login(stack: Stack, postgres: Postgres) -> None:
    credentials = stack.credentials()
    (first,) = credentials.issue(stack.configuration(), stack.pod("web-0"), [stack.generators_ref("db")])
    (second,) = credentials.issue(stack.configuration(), stack.pod("web-1"), [stack.generators_ref("db")])
    assert first.data["username"] != second.data["username"]
    assert first.data["password"] != second.data["password"]
    assert login_user(postgres, dict(first.data)) == first.data["username"]
    assert login_user(postgres, dict(second.data)) == second.data["username"]
    held = {record.owner.pod_name: record for record in credentials.records()}
    assert set(held) == {"web-0", "web-1"}
    assert held["web-0"].owner.pod_uid == stack.cluster.pod_uid(NAMESPACE, "web-0")
    assert held["web-0"].lease_id.startswith("database/creds/app/")


def test_the_owner_revokes_at_once(stack: Stack, postgres: Postgres) -> None:
    credentials = stack.credentials()
    owner = stack.pod("web-0")
    (issued,) = credentials.issue(stack.configuration(), owner, [stack.generators_ref("db")])
    assert issued.data["username"] in dynamic_roles(postgres)
    assert credentials.revoke_own(stack.configuration(), owner, stack.generators_ref("db")) == (1, 0)
    assert issued.data["username"] not in dynamic_roles(postgres)
    assert credentials.records() == []


def test_a_failed_batch_revokes_what_it_already_made(stack: Stack, postgres: Postgres) -> None:
    before = dynamic_roles(postgres)
    missing = vault_generator(stack.bao, "absent", "database/creds/app").ref  # never added
    with pytest.raises(NotFound, match="VaultDynamicSecret apps/absent does not exist"):
        stack.credentials().issue(
            stack.configuration(), stack.pod("web-0"), [stack.generators_ref("db"), missing]
        )
    assert dynamic_roles(postgres) == before
    assert stack.credentials().records() == []
    assert stack.metrics.credentials_revoked.labels("VaultDynamicSecret", "batch_failed")._value.get() == 1


def test_a_path_that_answers_no_lease_is_refused(stack: Stack) -> None:
    stack.bao.client().secrets.kv.v2.create_or_update_secret("plain", {"a": "b"})
    ref = stack.add(vault_generator(stack.bao, "kv", "secret/data/plain"))
    with pytest.raises(StoreError, match=r"answered GET secret/data/plain without a lease"):
        stack.credentials().issue(stack.configuration(), stack.pod("web-0"), [ref])
    assert stack.credentials().records() == []


def test_a_restarted_server_still_revokes(stack: Stack, postgres: Postgres) -> None:
    owner = stack.pod("web-0")
    (issued,) = stack.credentials().issue(stack.configuration(), owner, [stack.generators_ref("db")])
    restarted = stack.credentials()  # new registry, new Vault client, same state directory
    (record,) = restarted.records()
    assert record.owner == owner
    assert restarted.revoke_own(stack.configuration(), owner, stack.generators_ref("db")) == (1, 0)
    assert issued.data["username"] not in dynamic_roles(postgres)


def test_deleting_the_pod_drops_its_role_within_the_check_interval(stack: Stack, postgres: Postgres) -> None:
    interval = 0.5
    loop = revoker(stack, interval)
    kept_owner = stack.pod("web-1")
    (gone,) = stack.credentials().issue(
        stack.configuration(), stack.pod("web-0"), [stack.generators_ref("db")]
    )
    (kept,) = stack.credentials().issue(stack.configuration(), kept_owner, [stack.generators_ref("db")])
    loop.start()
    try:
        deleted_at = time.monotonic()
        stack.cluster.delete_pod(NAMESPACE, "web-0")
        while gone.data["username"] in dynamic_roles(postgres):
            assert time.monotonic() - deleted_at < interval + 5, "the role outlived the check interval"
            time.sleep(0.05)
        elapsed = time.monotonic() - deleted_at
    finally:
        loop.stop()
    print(f"pod deleted -> role gone in {elapsed:.2f} s (check interval {interval} s)")
    assert kept.data["username"] in dynamic_roles(postgres)
    assert [record.owner for record in stack.credentials().records()] == [kept_owner]
    assert stack.metrics.credentials_revoked.labels("VaultDynamicSecret", "pod_gone")._value.get() == 1


def test_a_living_pod_keeps_its_credential_past_the_lease_term(stack: Stack, postgres: Postgres) -> None:
    loop = revoker(stack, 1.0)
    (issued,) = stack.credentials().issue(
        stack.configuration(), stack.pod("web-0"), [stack.generators_ref("short")]
    )
    (before,) = stack.credentials().records()
    loop.start()
    try:
        time.sleep(6)  # past the 4 s term: only renewals keep the role
    finally:
        loop.stop()
    assert login_user(postgres, dict(issued.data)) == issued.data["username"]
    (after,) = stack.credentials().records()
    assert after.expires_at > before.expires_at + 1
    assert stack.metrics.credentials_renewed.labels("VaultDynamicSecret")._value.get() >= 1


def test_without_a_reviewer_token_nothing_is_renewed_and_the_lease_end_revokes(
    tmp_path: Path, openbao: OpenBao, postgres: Postgres
) -> None:
    with ClientClusterIssuer() as cluster:
        stack = Stack(openbao, cluster, tmp_path / "state", reviewer_token=None)
        ref = stack.add(vault_generator(openbao, "short", "database/creds/short"))
        (issued,) = stack.credentials().issue(stack.configuration(), stack.pod("web-0"), [ref])
        loop = revoker(stack, 1.0)
        loop.start()
        try:
            deadline = time.monotonic() + 10
            while stack.credentials().records():
                assert time.monotonic() < deadline, "the record outlived its lease"
                time.sleep(0.1)
        finally:
            loop.stop()
    assert issued.data["username"] not in dynamic_roles(postgres)
    assert stack.metrics.credentials_renewed.labels("VaultDynamicSecret")._value.get() == 0
    assert stack.metrics.credentials_revoked.labels("VaultDynamicSecret", "lease_end")._value.get() == 1
