"""The local lease-record store: tight modes, atomic writes, records read back, one leader at a time."""

from __future__ import annotations

import stat
from pathlib import Path

from federation.generators.leases import LeaseRecord, LocalLeaseStore, Owner, new_record_id
from federation.generators.model import GeneratorRef


def record(pod: str = "web-0") -> LeaseRecord:
    return LeaseRecord(
        id=new_record_id(),
        generator=GeneratorRef("apps", "VaultDynamicSecret", "db"),
        owner=Owner("alpha", "system:serviceaccount:apps:web", "apps", pod, "uid-" + pod),
        lease_id="database/creds/app/abc",
        issued_at=1000.0,
        expires_at=1060.0,
        duration=60.0,
        renewable=True,
    )


def test_records_round_trip_with_tight_modes(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    store = LocalLeaseStore(directory)
    first, second = record("web-0"), record("web-1")
    store.put(first)
    store.put(second)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert [path.name for path in files] == sorted(f"{r.id}.json" for r in (first, second))
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert sorted(store.records(), key=lambda r: r.owner.pod_name or "") == [first, second]
    # A second store on the same directory (another worker, or after a restart) sees the same.
    assert len(LocalLeaseStore(directory).records()) == 2


def test_replacing_a_record_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalLeaseStore(tmp_path)
    held = record()
    store.put(held)
    store.put(held.renewed(2000.0, renewable=False))
    assert [path.name for path in tmp_path.iterdir()] == [f"{held.id}.json"]
    (again,) = store.records()
    assert (again.expires_at, again.renewable) == (2000.0, False)


def test_removed_records_are_gone_and_removing_twice_is_fine(tmp_path: Path) -> None:
    store = LocalLeaseStore(tmp_path)
    held = record()
    store.put(held)
    store.remove(held.id)
    store.remove(held.id)
    assert store.records() == []


def test_an_unreadable_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = LocalLeaseStore(tmp_path)
    store.put(record())
    (tmp_path / "0123abcd.json").write_text("{not json")
    assert len(store.records()) == 1


def test_an_existing_loose_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "loose"
    directory.mkdir(mode=0o755)
    LocalLeaseStore(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_only_one_store_leads_until_it_closes(tmp_path: Path) -> None:
    first, second = LocalLeaseStore(tmp_path), LocalLeaseStore(tmp_path)
    assert first.is_leader()
    assert first.is_leader()  # keeps it
    assert not second.is_leader()
    first.close()
    assert second.is_leader()
    assert not first.is_leader()
    second.close()
