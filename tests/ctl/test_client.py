"""credctl trusts only a daemon of its own uid, and sends nothing before it knows (issue 11).

Under the `$TMPDIR`/`/tmp` fallback another user can make the socket's directory first
and listen there: credctl would hand them the TOTP code, or take credentials from them.
Each test runs the real `credctl` against a listener that records every byte it is sent.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CREDCTL = str(Path(sys.executable).with_name("credctl"))
NOBODY = 65534
ME = os.getuid()

# The commands that talk to the daemon: a code, credentials, a status, an event stream.
COMMANDS = [
    ["token", "123456"],
    ["credential-process", "prod-admin"],
    ["status"],
    ["prompt"],
]


@pytest.fixture
def box() -> Iterator[Path]:
    """A short directory under /tmp (socket paths are limited to ~104 bytes), removed after."""
    directory = Path(tempfile.mkdtemp(prefix="ct-", dir="/tmp"))
    try:
        yield directory
    finally:
        directory.chmod(0o700)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def recording_listener(path: Path, *, uid: int | None = None) -> Iterator[Callable[[], bytes]]:
    """A process listening at `path` that answers nothing and records what clients send.

    It binds as this test's uid, then, given `uid`, becomes that user before listen():
    the uid a client's SO_PEERCRED reports. Each connection is read up to its first line
    (a whole request), its end, or 2 s of silence, then closed. Yields a function that
    stops the process and returns every byte it received.
    """
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: system calls only, then _exit
        status = 0
        try:
            for fd in (ready_r, stop_w, out_r):
                os.close(fd)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            listener.listen()
            os.write(ready_w, b"ready")
            received = b""
            while True:
                readable, _, _ = select.select([listener, stop_r], [], [])
                if listener not in readable:
                    break  # told to stop, and no connection is waiting
                conn, _ = listener.accept()
                conn.settimeout(2)
                with conn:
                    while b"\n" not in received:
                        try:
                            chunk = conn.recv(65536)
                        except TimeoutError:
                            break
                        if not chunk:
                            break
                        received += chunk
            os.write(out_w, b"ok:" + received)
        except BaseException as error:
            os.write(out_w, f"error:{type(error).__name__}: {error}".encode())
            status = 1
        finally:
            os._exit(status)
    for fd in (ready_w, stop_r, out_w):
        os.close(fd)
    stopped = False

    def stop() -> bytes:
        nonlocal stopped
        stopped = True
        os.close(stop_w)
        chunks = []
        while chunk := os.read(out_r, 65536):
            chunks.append(chunk)
        os.close(out_r)
        os.waitpid(pid, 0)
        report = b"".join(chunks)
        assert report.startswith(b"ok:"), report
        return report[3:]

    try:
        assert os.read(ready_r, 16) == b"ready", "the listener did not start"
        yield stop
    finally:
        os.close(ready_r)
        if not stopped:
            stop()
        path.unlink(missing_ok=True)


def credctl(socket_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREDD_SOCKET": str(socket_path)}
    return subprocess.run(
        [CREDCTL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 3, nothing on stdout, one `credctl: error:` line holding each of `words`."""
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("credctl: error: not sending anything to "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_a_trusted_daemon_is_sent_the_request(box: Path) -> None:
    """The control case: the user's own listener in the user's own 0700 directory gets
    the request, so the zero-byte checks below would see bytes if any were sent."""
    sock = box / "credd.sock"
    with recording_listener(sock) as stop:
        done = credctl(sock, "token", "123456")
        received = stop()
    assert b'"op":"token"' in received
    assert b"123456" in received
    assert done.returncode == 1  # the listener hung up without an answer
    assert "closed the connection without an answer" in done.stderr


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: words[0])
def test_a_directory_of_another_uid_is_refused_before_anything_is_sent(
    box: Path, words: list[str]
) -> None:
    """Another user made the directory first (the /tmp fallback) and listens in it:
    credctl exits 3 naming the directory and its owner, and the listener gets 0 bytes."""
    directory = box / "credd-dir"
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    sock = directory / "credd.sock"
    with recording_listener(sock) as stop:
        done = credctl(sock, *words)
        received = stop()
    assert received == b""
    assert_refused(done, str(sock), f"{directory} belongs to uid {NOBODY}, not to you (uid {ME})")
    assert "CREDD_SOCKET" in done.stderr


def test_a_symlinked_directory_is_refused(box: Path) -> None:
    """The socket's directory is a symlink (to a directory that passes every check):
    refused, naming the link; nothing reaches the listener behind it."""
    real = box / "real"
    real.mkdir(mode=0o700)
    link = box / "link"
    link.symlink_to(real)
    with recording_listener(real / "credd.sock") as stop:
        done = credctl(link / "credd.sock", "token", "123456")
        received = stop()
    assert received == b""
    assert_refused(done, f"{link} is a symlink (owned by uid {ME}), not a directory")


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777, 0o720, 0o702])
def test_a_directory_group_or_others_can_write_is_refused(box: Path, mode: int) -> None:
    """Someone else could have swapped the socket for theirs: refused with the mode
    found and the fix (`chmod 700 DIR`); nothing reaches the listener."""
    directory = box / "open"
    directory.mkdir()
    directory.chmod(mode)
    sock = directory / "credd.sock"
    with recording_listener(sock) as stop:
        done = credctl(sock, "token", "123456")
        received = stop()
    assert received == b""
    assert_refused(
        done, f"{directory} is writable by group or others (mode {mode:04o})", "chmod 700"
    )


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: words[0])
def test_a_listener_of_another_uid_is_refused_before_anything_is_sent(
    box: Path, words: list[str]
) -> None:
    """The directory passes (ours, 0700, real) but the process listening runs as another
    uid (it bound the socket as us, then became nobody before listen()): credctl reads
    the peer's uid on the connection, exits 3 naming it, and sends 0 bytes."""
    sock = box / "credd.sock"
    with recording_listener(sock, uid=NOBODY) as stop:
        done = credctl(sock, *words)
        received = stop()
    assert received == b""
    assert_refused(done, str(sock), f"runs as uid {NOBODY}, not as you (uid {ME})", "CREDD_SOCKET")


def test_a_missing_directory_is_credd_not_running(box: Path) -> None:
    """No directory at all is the ordinary 'not running' (exit 3), not a refusal."""
    done = credctl(box / "absent" / "credd.sock", "status")
    assert done.returncode == 3
    assert done.stderr.startswith("credctl: error: credd is not running")
    assert str(box / "absent" / "credd.sock") in done.stderr
