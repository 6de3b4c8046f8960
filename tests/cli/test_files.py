"""Atomic secret files: exact bytes, exact modes, all or nothing, no temp files left behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.errors import CliError, Terminated
from cli.files import TEMP_SUFFIX, write_changed_files, write_files
from tests.cli.helpers_run import RunCli
from tests.cli.helpers_stub_federation import StubFederation


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A umask that would narrow any mode esi-cli did not set explicitly."""
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def everything_in(directory: Path) -> list[str]:
    """Every entry under ``directory``, hidden ones included, relative and sorted."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


@pytest.mark.usefixtures("strict_umask")
def test_files_hold_exactly_the_bytes_with_exactly_the_mode(tmp_path: Path) -> None:
    write_files({str(tmp_path / "a"): b"no newline", str(tmp_path / "sub" / "b"): b"\x00\xffbinary\n"}, 0o644)

    assert (tmp_path / "a").read_bytes() == b"no newline"
    assert (tmp_path / "sub" / "b").read_bytes() == b"\x00\xffbinary\n"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert everything_in(tmp_path) == ["a", "sub", "sub/b"]


def test_an_existing_read_only_file_is_replaced_by_a_rename(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_files({str(target): b"old"}, 0o440)
    old_inode = target.stat().st_ino

    write_files({str(target): b"new"}, 0o440)

    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != old_inode
    assert everything_in(tmp_path) == ["token"]


def test_a_failure_while_staging_writes_nothing_and_leaves_no_temp_file(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.write_bytes(b"old")
    (tmp_path / "not-a-dir").write_bytes(b"a file where a directory should be")

    with pytest.raises(CliError, match=r"cannot write file .*not-a-dir/second"):
        write_files({str(first): b"new", str(tmp_path / "not-a-dir" / "second"): b"x"}, 0o440)

    assert first.read_bytes() == b"old"
    assert everything_in(tmp_path) == ["first", "not-a-dir"]


def test_a_signal_while_writing_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(_descriptor: int) -> None:
        raise Terminated(15)

    monkeypatch.setattr(os, "fsync", interrupted)

    with pytest.raises(Terminated):
        write_files({str(tmp_path / "a"): b"secret"}, 0o440)

    assert everything_in(tmp_path) == []


def test_a_failed_rename_removes_the_remaining_temp_files(tmp_path: Path) -> None:
    (tmp_path / "is-a-dir").mkdir()
    (tmp_path / "is-a-dir" / "occupied").write_bytes(b"")

    with pytest.raises(CliError, match="is-a-dir"):
        write_files({str(tmp_path / "is-a-dir"): b"x"}, 0o440)

    assert not [name for name in everything_in(tmp_path) if name.endswith(TEMP_SUFFIX)]


def test_only_changed_files_are_rewritten(tmp_path: Path) -> None:
    same, changed, gone = tmp_path / "same", tmp_path / "changed", tmp_path / "gone"
    write_files({str(same): b"1", str(changed): b"1", str(gone): b"1"}, 0o440)
    inodes = {path: path.stat().st_ino for path in (same, changed)}
    gone.unlink()

    rewritten = write_changed_files({str(same): b"1", str(changed): b"2", str(gone): b"1"}, 0o440)

    assert rewritten == [str(changed), str(gone)]
    assert same.stat().st_ino == inodes[same]
    assert changed.stat().st_ino != inodes[changed]
    assert changed.read_bytes() == b"2"
    assert gone.read_bytes() == b"1"
    assert everything_in(tmp_path) == ["changed", "gone", "same"]


def test_a_changed_mode_alone_rewrites_the_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_files({str(target): b"1"}, 0o440)

    assert write_changed_files({str(target): b"1"}, 0o400) == [str(target)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert write_changed_files({str(target): b"1"}, 0o400) == []


def test_a_longer_file_with_the_same_prefix_counts_as_changed(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_files({str(target): b"abc-and-more"}, 0o440)

    assert write_changed_files({str(target): b"abc"}, 0o440) == [str(target)]
    assert target.read_bytes() == b"abc"


@pytest.mark.parametrize("depth", ["sub", "real/sub"])
def test_a_symlinked_directory_under_the_root_is_refused(tmp_path: Path, depth: str) -> None:
    root, outside = tmp_path / "secrets", tmp_path / "outside"
    outside.mkdir()
    link = root / depth
    link.parent.mkdir(parents=True)
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(CliError, match=f"{link} is a symbolic link"):
        write_files({str(root / depth / "nested" / "token"): b"secret"}, 0o440, str(root))
    with pytest.raises(CliError, match="symbolic link"):
        write_changed_files({str(root / depth / "token"): b"secret"}, 0o440, str(root))
    assert everything_in(outside) == []
    assert [p for p in everything_in(root) if TEMP_SUFFIX in p] == []


def test_the_root_itself_and_paths_outside_it_may_be_reached_through_links(tmp_path: Path) -> None:
    real, other = tmp_path / "real", tmp_path / "other"
    real.mkdir()
    other.mkdir()
    (tmp_path / "root-link").symlink_to(real, target_is_directory=True)
    (tmp_path / "other-link").symlink_to(other, target_is_directory=True)
    root = tmp_path / "root-link"
    write_files({str(root / "a" / "b"): b"1", str(tmp_path / "other-link" / "c"): b"2"}, 0o440, str(root))
    assert (real / "a" / "b").read_bytes() == b"1"
    assert (other / "c").read_bytes() == b"2"


def test_esi_cli_refuses_to_write_through_a_planted_link(
    run_cli: RunCli, stub: StubFederation, connect_args: list[str], secrets_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secrets_dir.mkdir(exist_ok=True)
    (secrets_dir / "db").symlink_to(outside, target_is_directory=True)
    result = run_cli("fetch", *connect_args, "--file", "db/password=vault-prod:db-credentials#password")
    assert result.exit_code == 1
    assert "is a symbolic link" in result.stderr
    assert everything_in(outside) == []
