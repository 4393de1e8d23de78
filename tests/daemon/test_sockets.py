"""The control socket's file: modes, directory checks, path length, single instance."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.daemon.sockets import AlreadyRunningError, SocketPathError, claim

CREDD = str(Path(sys.executable).with_name("credd"))


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp: socket paths must stay short (104 bytes on macOS)."""
    with tempfile.TemporaryDirectory(prefix="cs-", dir="/tmp") as name:
        yield Path(name)


def test_the_socket_is_0600_in_a_new_0700_directory(short_dir: Path) -> None:
    """Directory created 0700, socket bound 0600 (under umask 0177, never wider)."""
    listener = claim(short_dir / "run" / "credd.sock")
    try:
        assert stat.S_IMODE(os.stat(short_dir / "run").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(listener.path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(listener.path).st_mode)
    finally:
        listener.close()
    assert not listener.path.exists(), "the socket file is removed on close"


def test_a_second_claim_names_the_live_pid_and_leaves_the_socket(short_dir: Path) -> None:
    """Single instance: the lock holder's pid is named; its socket stays."""
    first = claim(short_dir / "credd.sock")
    try:
        with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
            claim(short_dir / "credd.sock")
        assert first.path.exists()
    finally:
        first.close()


def test_the_pid_is_named_even_when_read_just_after_the_winner_locked(
    short_dir: Path,
) -> None:
    """Regression: a daemon that lost the race read the lock file between the winner's
    flock and its writing the pid, and said `pid unknown`. It waits a moment for it."""
    directory = short_dir / "run"
    directory.mkdir(mode=0o700)
    lock = os.open(directory / "credd.sock.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # locked, pid not written yet
        live = f"{os.getpid()}\n".encode()
        writer = threading.Timer(0.1, lambda: os.pwrite(lock, live, 0))
        writer.start()
        with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
            claim(directory / "credd.sock")
        writer.join()
    finally:
        os.close(lock)


def test_a_dead_daemons_pid_left_in_the_lock_file_is_never_named(short_dir: Path) -> None:
    """Regression (seen in the two-daemons race): the lock file still named the last daemon,
    which had died, while the new winner had locked but not yet written its pid; the loser
    named the dead one. It now waits for a pid of a live process."""
    directory = short_dir / "run"
    directory.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])  # a pid of no live process
    gone.wait()
    lock = os.open(directory / "credd.sock.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(lock, f"{gone.pid}\n".encode(), 0)
        fcntl.flock(lock, fcntl.LOCK_EX)  # the winner has locked; the old pid is still there
        live = f"{os.getpid()}\n".encode()
        writer = threading.Timer(0.1, lambda: (os.ftruncate(lock, 0), os.pwrite(lock, live, 0)))
        writer.start()
        with pytest.raises(AlreadyRunningError, match=rf"\(pid {os.getpid()}\)"):
            claim(directory / "credd.sock")
        writer.join()
    finally:
        os.close(lock)


def test_a_daemon_that_stops_leaves_no_pid_behind(short_dir: Path) -> None:
    """A clean stop clears the pid, so no rival can read it while a new daemon starts."""
    listener = claim(short_dir / "credd.sock")
    lock = short_dir / "credd.sock.lock"
    assert lock.read_text() == f"{os.getpid()}\n"
    listener.close()
    assert lock.read_text() == ""


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_directory_others_can_write_is_refused(short_dir: Path, mode: int) -> None:
    """Someone else could swap the socket: refuse, and say how to fix it."""
    directory = short_dir / "open"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(SocketPathError, match="chmod 700"):
        claim(directory / "credd.sock")


def test_a_symlinked_directory_is_refused(short_dir: Path) -> None:
    """The socket's directory must be a real directory, not a link to somewhere else."""
    real = short_dir / "real"
    real.mkdir(mode=0o700)
    (short_dir / "link").symlink_to(real)
    with pytest.raises(SocketPathError, match="symlink"):
        claim(short_dir / "link" / "credd.sock")


def test_a_socket_path_too_long_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    """104 bytes or more: `credd run` exits 2 with one line naming the path and the limit."""
    long_path = tmp_path / ("x" * 120) / "credd.sock"
    env = {**os.environ, "CREDD_SOCKET": str(long_path)}
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nprofiles:\n  r:\n    source_profile: default\n"
        "    role_arn: arn:aws:iam::123456789012:role/R\n"
    )
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAEXAMPLE000000001\naws_secret_access_key = s\n"
    )
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "credentials")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "config")
    done = subprocess.run(
        [CREDD, "run", "--policy", str(policy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Unix sockets allow at most 103" in done.stderr
    assert "Traceback" not in done.stderr
