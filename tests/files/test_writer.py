"""credd.files.writer: the safe writer, on a real filesystem under tmp_path."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credd.errors import CredentialsFileError, FileWriteError
from credd.files.writer import SETTLE_SECONDS, CredentialsWriter, lock_path

CANARY = "CANARYSECRET"
ORIGINAL = "# mine\n[default]\naws_access_key_id = AKIALONGTERM\naws_secret_access_key = OLD\n"


def mode(path: Path) -> int:
    """Permission bits of `path` (not following a link)."""
    return stat.S_IMODE(path.lstat().st_mode)


def temp_files(directory: Path) -> list[str]:
    """Names of credd temp files left in `directory`."""
    return sorted(name for name in os.listdir(directory) if ".credd-tmp-" in name)


def session(token: str = "TOKEN") -> dict[str, str | None]:
    """The keys the daemon writes for a session."""
    return {
        "aws_access_key_id": "ASIASESSION",
        "aws_secret_access_key": CANARY,
        "aws_session_token": token,
        "aws_security_token": None,
        "x_security_token_expires": "2026-11-26T20:00:00Z",
    }


def test_new_file_is_0600_in_new_directories_0700(tmp_path: Path) -> None:
    """A missing file is created 0600, and every missing directory above it 0700."""
    path = tmp_path / "home" / ".aws" / "credentials"
    CredentialsWriter(path).update({"s": session()})
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700
    assert CredentialsWriter(path).read() == {"s": {k: v for k, v in session().items() if v}}


def test_existing_0644_file_becomes_0600_and_keeps_its_other_bytes(tmp_path: Path) -> None:
    """An update makes a world-readable file 0600 and changes only the managed section."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    path.chmod(0o644)
    CredentialsWriter(path).update({"s": session()})
    assert mode(path) == 0o600
    assert path.read_text().startswith(ORIGINAL + "\n[s]\n")


def test_crlf_and_bom_survive_the_writer(tmp_path: Path) -> None:
    """Bytes outside the managed keys, BOM and CRLF included, are written back as they were."""
    path = tmp_path / "credentials"
    path.write_bytes(b"\xef\xbb\xbf[a]\r\nk = 1\r\n[s]\r\naws_session_token = OLD\r\n")
    CredentialsWriter(path).update({"s": {"aws_session_token": "NEW"}})
    assert path.read_bytes() == b"\xef\xbb\xbf[a]\r\nk = 1\r\n[s]\r\naws_session_token = NEW\r\n"


def test_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    """A symlinked file has its target rewritten; the link itself is not replaced."""
    target = tmp_path / "dotfiles" / "credentials"
    target.parent.mkdir()
    target.write_text(ORIGINAL)
    link = tmp_path / "credentials"
    link.symlink_to(target)
    CredentialsWriter(link).update({"s": session()})
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert "[s]" in target.read_text()
    assert lock_path(target).exists(), "the lock sits beside the real file"


def test_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    """A link to a file that does not exist yet: the target is created, the link kept."""
    target = tmp_path / "store" / "credentials"
    link = tmp_path / "credentials"
    link.symlink_to(target)
    CredentialsWriter(link).update({"s": session()})
    assert link.is_symlink()
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
    assert CredentialsWriter(link).read()["s"]["aws_session_token"] == "TOKEN"


def test_symlink_loop_is_an_error_not_a_replaced_link(tmp_path: Path) -> None:
    """A link loop cannot be resolved: the write fails and the links stay as they were."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(FileWriteError, match="symlink loop"):
        CredentialsWriter(a).update({"s": session()})
    assert a.is_symlink()
    assert b.is_symlink()


def rewrite_in_place(path: Path, text: str, *, keep_mtime: bool = False) -> None:
    """What the AWS CLI does: truncate and rewrite the same inode, with no lock."""
    before = path.stat()
    with open(path, "r+", encoding="utf-8") as handle:
        handle.truncate(0)
        handle.write(text)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_concurrent_in_place_rewrite_is_detected_and_neither_write_is_lost(
    tmp_path: Path,
) -> None:
    """A rewrite between credd's read and its rename is re-read and re-applied, not clobbered."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    calls: list[int] = []

    def aws_configure_set(target: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            rewrite_in_place(target, ORIGINAL + "\n[cli]\nregion = eu-west-1\n")

    CredentialsWriter(path, before_replace=aws_configure_set).update({"s": session()})
    parsed = CredentialsWriter(path).read()
    assert parsed["cli"] == {"region": "eu-west-1"}
    assert parsed["s"]["aws_session_token"] == "TOKEN"
    assert len(calls) == 2
    assert temp_files(tmp_path) == []


def late_writer(write: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    """A rename preceded, once, by another program's write into the file it replaces:
    the window between credd's last check and its rename, which no check can close."""
    done: list[bool] = []

    def replace(temp: Path, target: Path) -> None:
        if not done:
            done.append(True)
            write(target)
        os.replace(temp, target)

    return replace


def append_in_place(text: str) -> Callable[[Path], None]:
    """What `aws configure set` does for a new section: append, no lock, no rename."""

    def write(target: Path) -> None:
        with open(target, "a") as file:
            file.write(text)

    return write


def test_a_write_into_the_replaced_file_is_carried_into_the_next_update(
    tmp_path: Path,
) -> None:
    """`aws configure set` appending between credd's check and its rename writes into the
    file the rename replaces; the next update carries its section over."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    writer = CredentialsWriter(
        path,
        replace=late_writer(append_in_place("[cli]\naws_access_key_id = AKIACLI\n")),
        settle_seconds=0,
    )
    writer.update({"s": session("ONE")})
    assert "cli" not in CredentialsWriter(path).read()  # lost, for now
    writer.update({"s": session("TWO")})
    parsed = CredentialsWriter(path).read()
    assert parsed["cli"] == {"aws_access_key_id": "AKIACLI"}
    assert parsed["s"]["aws_session_token"] == "TWO"
    assert parsed["default"]["aws_secret_access_key"] == "OLD"


def test_carry_over_alone_brings_a_late_write_back(tmp_path: Path) -> None:
    """With no further renewal (the daemon's heartbeat), `carry_over` does it, once."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    writer = CredentialsWriter(
        path, replace=late_writer(append_in_place("[cli]\nregion = eu-west-1\n")), settle_seconds=0
    )
    writer.update({"s": session()})
    assert writer.carry_over() == ["cli"]
    assert CredentialsWriter(path).read()["cli"] == {"region": "eu-west-1"}
    # Carried once: a later change by hand in the live file is not undone.
    text = path.read_text().replace("eu-west-1", "us-west-2")
    path.write_text(text)
    assert writer.carry_over() == []
    assert CredentialsWriter(path).read()["cli"] == {"region": "us-west-2"}


def test_a_late_write_of_old_credentials_or_removals_is_not_carried(tmp_path: Path) -> None:
    """A writer that read the file before a renewal writes the old session back, and drops
    a key: neither comes back. Only what it set anew is carried."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    CredentialsWriter(path).update({"s": session("OLD-TOKEN")})
    stale = path.read_text()

    def rewrite_from_an_old_read(target: Path) -> None:
        text = stale.replace("aws_secret_access_key = OLD\n", "") + "[cli]\nregion = x\n"
        rewrite_in_place(target, text)

    writer = CredentialsWriter(
        path, replace=late_writer(rewrite_from_an_old_read), settle_seconds=0
    )
    writer.update({"s": session("NEW-TOKEN")})
    assert writer.carry_over() == ["cli"]
    parsed = CredentialsWriter(path).read()
    assert parsed["s"]["aws_session_token"] == "NEW-TOKEN"
    assert parsed["default"]["aws_secret_access_key"] == "OLD"
    assert parsed["cli"] == {"region": "x"}


def test_a_replaced_file_still_being_written_is_not_read(tmp_path: Path) -> None:
    """A late write is carried only once the replaced file has been left alone for a while
    (so a half-written file is never taken for the other program's whole change)."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    long_ago = time.time() - 7200
    os.utime(path, (long_ago, long_ago))  # settled before credd's update
    writer = CredentialsWriter(
        path, replace=late_writer(append_in_place("[cli]\nregion = x\n")), settle_seconds=3600
    )
    writer.update({"s": session()})
    assert writer.carry_over() == []
    assert "cli" not in CredentialsWriter(path).read()


def test_replaced_files_held_open_are_bounded(tmp_path: Path) -> None:
    """Each rename keeps the replaced file open for a while; a burst cannot exhaust fds."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    writer = CredentialsWriter(path)
    before = len(os.listdir("/proc/self/fd"))
    for index in range(100):
        writer.update({"s": session(f"T{index}")})
    assert len(os.listdir("/proc/self/fd")) - before <= 16
    writer.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_replaced_file_closed_to_make_room_is_not_closed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a replaced file read at the start of an update, then closed during it
    to make room for the file that update replaced, raised ValueError at the end of the
    update (and could have closed an fd reused by then), leaving a renewal `refreshing`."""
    monkeypatch.setattr("credd.files.writer.MAX_WATCHED", 1)
    monkeypatch.setattr("credd.files.writer.WATCH_SECONDS", 0.0)
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    writer = CredentialsWriter(path, settle_seconds=0)
    before = len(os.listdir("/proc/self/fd"))
    for index in range(5):
        writer.update({"s": session(f"T{index}")})
    assert len(os.listdir("/proc/self/fd")) - before <= 1
    assert CredentialsWriter(path).read()["s"]["aws_session_token"] == "T4"


def test_an_update_waits_for_a_file_another_program_is_writing(tmp_path: Path) -> None:
    """Regression: the AWS CLI truncates the file and then writes it. An update that read
    it in between based its write on an empty file, and every other section vanished
    (until carried over). A file modified by another program just now is left to settle."""
    path = tmp_path / "credentials"
    path.write_text("")  # truncated, as at the start of an in-place rewrite
    finish = threading.Timer(0.05, lambda: rewrite_in_place(path, ORIGINAL))
    finish.start()
    try:
        CredentialsWriter(path, settle_seconds=1.0).update({"s": session()})
    finally:
        finish.join()
    parsed = CredentialsWriter(path).read()
    assert parsed["default"]["aws_secret_access_key"] == "OLD"
    assert parsed["s"]["aws_session_token"] == "TOKEN"


def test_a_read_waits_for_a_file_emptied_for_a_rewrite(tmp_path: Path) -> None:
    """Regression: a role renewed while `aws configure set` had truncated the file (and
    the busy machine had not yet let it write) found no long-term keys and went to
    `error`. A file credd wrote that is now empty is waited for, however old the
    truncation."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    writer = CredentialsWriter(path, settle_seconds=0.05)
    writer.update({"s": session()})
    written = path.read_text()
    with open(path, "r+") as handle:
        handle.truncate(0)
    time.sleep(0.1)  # older than the settle time: only its emptiness says it is unfinished
    finish = threading.Timer(0.2, lambda: rewrite_in_place(path, written))
    finish.start()
    try:
        parsed = writer.read()
    finally:
        finish.join()
    assert parsed["default"]["aws_secret_access_key"] == "OLD"


def test_same_size_same_mtime_rewrite_is_caught_by_the_hash(tmp_path: Path) -> None:
    """A rewrite that keeps inode, size and mtime is still seen, through the content hash."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    swapped = ORIGINAL.replace("OLD", "NEW")
    assert len(swapped) == len(ORIGINAL)
    calls: list[int] = []

    def sneaky(target: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            rewrite_in_place(target, swapped, keep_mtime=True)

    CredentialsWriter(path, before_replace=sneaky).update({"s": session()})
    assert CredentialsWriter(path).read()["default"]["aws_secret_access_key"] == "NEW"
    assert len(calls) == 2


def test_a_file_that_keeps_changing_fails_after_bounded_attempts(tmp_path: Path) -> None:
    """When every attempt is raced, the write gives up with FileWriteError and leaves no temp."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    counter = iter(range(1000))

    def always(target: Path) -> None:
        rewrite_in_place(target, ORIGINAL + f"# edit {next(counter)}\n")

    writer = CredentialsWriter(path, before_replace=always, max_attempts=3)
    with pytest.raises(FileWriteError, match="kept changing"):
        writer.update({"s": session()})
    assert "[s]" not in path.read_text()
    assert temp_files(tmp_path) == []


def failing(err: int) -> Callable[..., object]:
    """An OS call that fails with `err`."""

    def call(*_: object) -> object:
        raise OSError(err, os.strerror(err))

    return call


@pytest.mark.parametrize(
    ("hook", "err"),
    [
        ("write", errno.ENOSPC),
        ("fsync", errno.EIO),
        ("replace", errno.EROFS),
        ("replace", errno.EACCES),
    ],
)
def test_os_errors_leave_the_original_byte_identical_and_no_temp(
    tmp_path: Path, hook: str, err: int
) -> None:
    """Disk full, I/O error, read-only or denied: FileWriteError, original intact, no temp.

    Read-only and permission errors are injected rather than made with
    chmod 0500, because the tests run as root, whom chmod does not stop.
    """
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    before = path.read_bytes()
    writer = CredentialsWriter(path, **{hook: failing(err)})  # type: ignore[arg-type]
    with pytest.raises(FileWriteError) as caught:
        writer.update({"s": session()})
    message = str(caught.value)
    assert str(path) in message
    assert errno.errorcode[err] in message
    assert os.strerror(err) in message
    assert CANARY not in message
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_unparseable_file_is_never_rewritten(tmp_path: Path) -> None:
    """A duplicate section makes the update fail with its line, and no byte changes."""
    path = tmp_path / "credentials"
    path.write_text(f"[s]\naws_secret_access_key = {CANARY}\n[s]\n")
    path.chmod(0o644)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(CredentialsFileError) as caught:
        CredentialsWriter(path).update({"s": session()})
    assert caught.value.line == 3
    assert CANARY not in str(caught.value)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert mode(path) == 0o644
    assert temp_files(tmp_path) == []


def test_non_utf8_file_is_refused_with_its_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are refused (botocore refuses them too), naming the line."""
    path = tmp_path / "credentials"
    path.write_bytes(b"[s]\nk = \xff\n")
    with pytest.raises(CredentialsFileError) as caught:
        CredentialsWriter(path).update({"s": session()})
    assert caught.value.line == 2
    assert path.read_bytes() == b"[s]\nk = \xff\n"


def test_read_of_missing_file_is_empty(tmp_path: Path) -> None:
    """read() of a file that does not exist is an empty mapping, and creates nothing."""
    assert CredentialsWriter(tmp_path / "nope" / "credentials").read() == {}
    assert not (tmp_path / "nope").exists()


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    """Temps of dead pids, or older than a minute, go; a fresh one of a live pid stays."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    dead = tmp_path / f".credentials.credd-tmp-{dead_pid()}-abc123"
    old = tmp_path / f".credentials.credd-tmp-{os.getpid()}-def456"
    live = tmp_path / f".credentials.credd-tmp-{os.getpid()}-0789ab"
    other = tmp_path / f".config.credd-tmp-{dead_pid()}-abc123"
    for file in (dead, old, live, other):
        file.write_text(CANARY)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    removed = CredentialsWriter(path).sweep_stale_temp_files()
    assert sorted(removed) == sorted([dead, old])
    assert live.exists()
    assert other.exists(), "only this file's temps are swept"


def test_update_sweeps_stale_temp_files_first(tmp_path: Path) -> None:
    """A crashed write's temp file is removed by the next update."""
    path = tmp_path / "credentials"
    stale = tmp_path / f".credentials.credd-tmp-{dead_pid()}-abc123"
    stale.write_text(CANARY)
    CredentialsWriter(path).update({"s": session()})
    assert not stale.exists()
    assert temp_files(tmp_path) == []


def test_many_sections_land_in_one_write(tmp_path: Path) -> None:
    """One update() call writes several sections with a single rename."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    renames: list[Path] = []

    def counting_replace(src: Path, dst: Path) -> None:
        renames.append(dst)
        os.replace(src, dst)

    writer = CredentialsWriter(path, replace=counting_replace)
    writer.update({"a": session("A"), "b": session("B"), "default": {"region": "eu"}})
    parsed = writer.read()
    assert renames == [path]
    assert (parsed["a"]["aws_session_token"], parsed["b"]["aws_session_token"]) == ("A", "B")
    assert parsed["default"]["region"] == "eu"


def test_update_that_changes_nothing_does_not_rewrite(tmp_path: Path) -> None:
    """Removing keys that are absent leaves the file (and its inode) alone, and creates none."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    inode = path.stat().st_ino
    CredentialsWriter(path).update({"default": {"aws_security_token": None}})
    assert path.stat().st_ino == inode
    CredentialsWriter(tmp_path / "new").update({"s": {"aws_security_token": None}})
    assert not (tmp_path / "new").exists()


def test_threads_updating_at_once_all_land(tmp_path: Path) -> None:
    """Updates from many threads, through one writer and through several, are all kept."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    shared = CredentialsWriter(path)

    def work(n: int) -> None:
        writer = shared if n % 2 else CredentialsWriter(path)
        for round_ in range(5):
            writer.update({f"t{n}": session(f"T{n}-{round_}")})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parsed = shared.read()
    assert {parsed[f"t{n}"]["aws_session_token"] for n in range(12)} == {
        f"T{n}-4" for n in range(12)
    }
    assert parsed["default"]["aws_secret_access_key"] == "OLD"
    assert temp_files(tmp_path) == []


_CHILD = """
import sys
from pathlib import Path
from credd.files.writer import CredentialsWriter
path, name = Path(sys.argv[1]), sys.argv[2]
writer = CredentialsWriter(path)
for round_ in range(10):
    writer.update({name: {"aws_session_token": f"{name}-{round_}", "aws_access_key_id": "ASIAX"}})
"""


@pytest.mark.slow
def test_processes_updating_different_sections_at_once_all_land(tmp_path: Path) -> None:
    """Several real processes writing their own sections: the flock serialises them, none lost."""
    path = tmp_path / "credentials"
    path.write_text(ORIGINAL)
    names = [f"p{n}" for n in range(6)]
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), name]) for name in names]
    assert [child.wait(timeout=60) for child in children] == [0] * len(names)
    parsed = CredentialsWriter(path).read()
    assert {name: parsed[name]["aws_session_token"] for name in names} == {
        name: f"{name}-9" for name in names
    }
    assert path.read_text().startswith(ORIGINAL)
    assert temp_files(tmp_path) == []


def test_the_writer_waits_on_the_clock_and_sleep_it_is_given(tmp_path: Path) -> None:
    """A file another program modified this very instant is read once it has settled; the
    wait is measured on the writer's injected clocks and slept through its injected sleep,
    so tests (and the daemon) control it."""
    path = tmp_path / "credentials"
    path.write_text("[default]\nregion = eu-west-1\n")
    now = [path.stat().st_mtime_ns]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += int(seconds * 1e9)

    writer = CredentialsWriter(
        path, wall_ns=lambda: now[0], monotonic=lambda: now[0] / 1e9, sleep=sleep
    )
    assert writer.read() == {"default": {"region": "eu-west-1"}}
    assert slept and sum(slept) >= SETTLE_SECONDS
    slept.clear()
    assert writer.read() == {"default": {"region": "eu-west-1"}}
    assert slept == [], "a settled file is read at once"
