"""AuthorizedIdentity records: names, the round trip of a record, and read-modify-write under conflicts."""

from __future__ import annotations

import copy
from typing import Any

from federation.generators.leases import LeaseRecord, Owner, new_record_id
from federation.generators.model import GeneratorRef
from federation.kube.api import KubeApiError
from federation.kube.records import COLLECTION, KubeLeaseStore, identity_name


class ConflictingApi:
    """An API server double that keeps resourceVersions and answers 409 to a stale write; ``races``
    makes that many writes lose to a concurrent writer first."""

    def __init__(self, races: int = 0) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.races = races

    def get(self, path: str) -> dict[str, Any]:
        if path == COLLECTION:
            return {"items": [copy.deepcopy(obj) for obj in self.objects.values()]}
        if path not in self.objects:
            raise KubeApiError(404, "not found")
        return copy.deepcopy(self.objects[path])

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = f"{path}/{body['metadata']['name']}"
        if name in self.objects:
            raise KubeApiError(409, "already exists")
        return self._store(name, body)

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.races:
            self.races -= 1
            self.version += 1  # someone else wrote in between
            self.objects[path]["metadata"]["resourceVersion"] = str(self.version)
        if body["metadata"].get("resourceVersion") != self.objects[path]["metadata"]["resourceVersion"]:
            raise KubeApiError(409, "conflict")
        return self._store(path, body)

    def _store(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[path] = stored
        return stored


def record(pod: str | None = "web-0") -> LeaseRecord:
    owner = Owner("client-cluster-alpha", "system:serviceaccount:apps:web", "apps", pod, pod and f"uid-{pod}")
    return LeaseRecord(
        new_record_id(),
        GeneratorRef("apps", "VaultDynamicSecret", "db"),
        owner,
        "database/creds/app/x",
        1.0,
        61.0,
        60.0,
        True,
    )


def store(api: ConflictingApi) -> KubeLeaseStore:
    return KubeLeaseStore(lambda: api, lambda: True, lambda federation: "https://issuer.example")  # type: ignore[arg-type,return-value]


def test_identity_names_are_valid_and_stable() -> None:
    name = identity_name("client-cluster-alpha", "system:serviceaccount:apps:web")
    assert name == "client-cluster-alpha.system-serviceaccount-apps-web"
    long = identity_name("a" * 200, "system:serviceaccount:apps:" + "b" * 200)
    assert len(long) <= 253
    assert long == identity_name("a" * 200, "system:serviceaccount:apps:" + "b" * 200)
    assert long != identity_name("a" * 200, "system:serviceaccount:apps:" + "b" * 199 + "c")


def test_records_round_trip_through_authorized_identities() -> None:
    api = ConflictingApi()
    records = store(api)
    first, second, podless = record("web-0"), record("web-1"), record(None)
    for held in (first, second, podless):
        records.put(held)
    assert len(api.objects) == 1  # one identity, three credentials
    assert sorted(records.records(), key=lambda r: r.id) == sorted(
        [first, second, podless], key=lambda r: r.id
    )
    (identity,) = api.objects.values()
    assert identity["spec"]["identitySpec"]["subject"]["oidc"]["issuer"] == "https://issuer.example"
    records.put(first.renewed(500.0, renewable=False))
    records.remove(second.id)
    held = {r.id: r for r in records.records()}
    assert set(held) == {first.id, podless.id}
    assert held[first.id].expires_at == 500.0


def test_a_write_that_loses_a_race_is_retried_on_the_fresh_object() -> None:
    api = ConflictingApi()
    records = store(api)
    first, second = record("web-0"), record("web-1")
    records.put(first)
    api.races = 3
    records.put(second)
    assert {r.id for r in records.records()} == {first.id, second.id}
