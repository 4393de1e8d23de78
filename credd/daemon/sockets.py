"""The control socket's file: path checks, single-instance lock, bind.

The directory check and the peer's uid are credd/socketcheck.py's, shared with `credctl`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from credd.errors import AlreadyRunningError, SocketPathError
from credd.paths import MAX_SOCKET_PATH_BYTES
from credd.socketcheck import directory_problem

# A daemon that lost the race for the lock reads the winner's pid from the lock file,
# which the winner writes just after locking: on a busy machine, a moment later.
PID_READS = 50
PID_REREAD_SECONDS = 0.02


def check_path_length(path: Path) -> None:
    """A Unix socket path must fit sun_path (104 bytes on macOS, 108 on Linux)."""
    size = len(os.fsencode(path))
    if size >= MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"socket path {path} is {size} bytes; Unix sockets allow at most "
            f"{MAX_SOCKET_PATH_BYTES - 1}: choose a shorter one with --socket or CREDD_SOCKET"
        )


def prepare_directory(directory: Path) -> None:
    """Create the socket's directory 0700, or check an existing one is ours and closed.

    Refuses a symlink, a directory of another user, and one that others may write to
    (they could swap the socket for their own).
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
    except OSError as error:
        raise SocketPathError(f"cannot create {directory}: {error.strerror}") from None
    problem = directory_problem(str(directory), info, os.getuid())
    if problem is not None:
        raise SocketPathError(problem)


@dataclass
class Listener:
    """A bound, listening control socket and the lock that makes this daemon the only one."""

    path: Path
    sock: socket.socket
    lock_fd: int

    def close(self) -> None:
        """Remove the socket file and let go of the lock."""
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.ftruncate(self.lock_fd, 0)  # no pid of ours left for the next daemon's rival
        os.close(self.lock_fd)


def claim(path: Path) -> Listener:
    """Become the one daemon on `path`: take its lock, replace a stale socket, bind, listen.

    A second daemon on the same path raises AlreadyRunningError naming the live pid.
    The live socket is never removed: only the lock holder touches it.
    """
    check_path_length(path)
    prepare_directory(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(lock_fd)
        os.close(lock_fd)
        raise AlreadyRunningError(f"credd is already running (pid {pid}) on {path}") from None
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # stale: its daemon died without cleaning up, or we would not hold the lock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The socket must never exist with wider permissions, not even between bind and chmod.
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as error:
        sock.close()
        os.close(lock_fd)
        raise SocketPathError(f"cannot bind {path}: {error.strerror}") from None
    finally:
        os.umask(old_umask)
    sock.listen(128)
    sock.setblocking(False)
    return Listener(path, sock, lock_fd)


def _holder_pid(lock_fd: int) -> str:
    """The pid the lock's holder wrote, waiting a little for it: it writes just after locking.

    Until it does, the file may still name a daemon that died (killed, it could not clear
    it): a pid of no live process is read again, never reported.
    """
    for _ in range(PID_READS):
        pid = os.pread(lock_fd, 32, 0).decode("ascii", "replace").strip()
        if pid.isdigit() and _alive(int(pid)):
            return pid
        time.sleep(PID_REREAD_SECONDS)
    return "unknown"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
