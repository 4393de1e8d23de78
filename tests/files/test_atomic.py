"""credd.files.atomic: one way to write a file whole or not at all, on a real filesystem."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.files.atomic import atomic_write, make_directories, temp_prefix, write_new


def mode(path: Path) -> int:
    """Permission bits of `path` (not following a link)."""
    return stat.S_IMODE(path.lstat().st_mode)


def leftovers(directory: Path) -> list[str]:
    """Temp files of credd's left in `directory`."""
    return sorted(name for name in os.listdir(directory) if ".credd-tmp-" in name)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave files group-writable (0002), restored afterwards."""
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("wanted", [0o600, 0o644, 0o400])
def test_the_file_has_exactly_the_mode_asked_whatever_the_umask(
    tmp_path: Path, wanted: int
) -> None:
    """Under umask 0 (nothing taken away) and 0777 (everything), the mode is `wanted`."""
    for umask in (0o000, 0o777):
        old = os.umask(umask)
        try:
            target = tmp_path / f"file-{umask:o}"
            written = atomic_write(target, b"data\n", mode=wanted)
        finally:
            os.umask(old)
        assert written == target
        assert (target.read_bytes(), mode(target)) == (b"data\n", wanted)
    assert leftovers(tmp_path) == []


def test_an_existing_file_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    """The rename gives a new inode: a reader holding the old file still reads it whole."""
    target = tmp_path / "unit"
    target.write_bytes(b"old\n")
    with target.open("rb") as reader:
        atomic_write(target, b"new\n", mode=0o644)
        assert reader.read() == b"old\n"
    assert target.read_bytes() == b"new\n"
    assert leftovers(tmp_path) == []


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    """The target of the link gets the bytes; the link is not replaced by a file."""
    real = tmp_path / "real" / "policy.yaml"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    link = tmp_path / "policy.yaml"
    link.symlink_to(real)
    assert atomic_write(link, b"new\n", mode=0o600) == real
    assert link.is_symlink()
    assert (real.read_bytes(), mode(real)) == (b"new\n", 0o600)


def test_without_replace_an_existing_file_is_kept(tmp_path: Path) -> None:
    """replace=False: FileExistsError, the file byte-identical, no temp file left."""
    target = tmp_path / "policy.yaml"
    target.write_bytes(b"mine\n")
    with pytest.raises(FileExistsError):
        atomic_write(target, b"theirs\n", mode=0o600, replace=False)
    assert target.read_bytes() == b"mine\n"
    assert leftovers(tmp_path) == []
    fresh = tmp_path / "new.yaml"
    atomic_write(fresh, b"first\n", mode=0o600, replace=False)
    assert fresh.read_bytes() == b"first\n"
    assert leftovers(tmp_path) == []


def test_a_failed_rename_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    """A directory where the file should go: the error is raised, the directory untouched."""
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"x")
    with pytest.raises(OSError):
        atomic_write(target, b"data", mode=0o600)
    assert os.listdir(target) == ["inside"]
    assert leftovers(tmp_path) == []


def test_a_failed_write_removes_the_temp_file(tmp_path: Path) -> None:
    """A full disk half-way through: ENOSPC is raised and no partial file is left."""
    calls = 0

    def full_after_one_byte(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data[:1])

    path = tmp_path / f"{temp_prefix(tmp_path / 'x')}1-abc"
    with pytest.raises(OSError) as caught:
        write_new(path, b"several bytes", mode=0o600, write=full_after_one_byte)
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_partial_writes_are_continued(tmp_path: Path) -> None:
    """A write that takes only part of the bytes is called again for the rest."""
    path = tmp_path / "f"
    write_new(path, b"abcdef", mode=0o600, write=lambda fd, data: os.write(fd, data[:2]))
    assert path.read_bytes() == b"abcdef"


def test_write_new_never_opens_an_existing_file_or_a_symlink(tmp_path: Path) -> None:
    """O_EXCL and O_NOFOLLOW: a file or a link planted at the temp name is left alone."""
    planted = tmp_path / "planted"
    planted.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_new(planted, b"x", mode=0o600)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        write_new(link, b"x", mode=0o600)
    assert planted.read_bytes() == victim.read_bytes() == b"keep"


def test_the_file_then_its_directory_are_fsynced(tmp_path: Path) -> None:
    """Both the data and the rename reach the disk: fsync on the file, then the directory."""
    synced: list[str] = []

    def record(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        os.fsync(fd)

    atomic_write(tmp_path / "f", b"data", mode=0o600, fsync=record)
    assert synced == ["file", "directory"]


def test_a_directory_that_cannot_be_fsynced_is_not_a_failed_write(tmp_path: Path) -> None:
    """Some filesystems refuse to fsync a directory: the file is written all the same."""

    def refuse_directories(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    atomic_write(tmp_path / "f", b"data", mode=0o600, fsync=refuse_directories)
    assert (tmp_path / "f").read_bytes() == b"data"


def test_make_directories_gives_each_missing_one_the_mode(
    tmp_path: Path, loose_umask: None
) -> None:
    """Every directory it makes has exactly the mode (the umask 0002 takes nothing away
    and adds nothing); one that exists keeps its own mode."""
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o751)
    deep = existing / "a" / "b" / "c"
    make_directories(deep, 0o700)
    assert [mode(d) for d in (existing, existing / "a", existing / "a" / "b", deep)] == [
        0o751,
        0o700,
        0o700,
        0o700,
    ]
    make_directories(deep, 0o755)
    assert mode(deep) == 0o700, "an existing directory is never changed"
