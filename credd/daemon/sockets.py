"""The control socket's file: path checks, single-instance lock, bind, peer uid.

Standard library only: `credctl` uses the path check and `peer_uid` too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from credd.errors import CreddError
from credd.paths import MAX_SOCKET_PATH_BYTES

# A daemon that lost the race for the lock reads the winner's pid from the lock file,
# which the winner writes just after locking: on a busy machine, a moment later.
PID_READS = 50
PID_REREAD_SECONDS = 0.02


class SocketPathError(CreddError):
    """The socket path or its directory cannot be used safely."""

    exit_status = 2


class AlreadyRunningError(CreddError):
    """Another credd holds the socket."""

    exit_status = 1


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
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SocketPathError(f"{directory} is not a directory (a symlink is refused)")
    if info.st_uid != os.getuid():
        raise SocketPathError(f"{directory} belongs to uid {info.st_uid}, not to you")
    if info.st_mode & 0o022:
        raise SocketPathError(
            f"{directory} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"run chmod 700 {directory}"
        )


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
    """The pid the lock's holder wrote, waiting a little for it: it writes just after locking."""
    for _ in range(PID_READS):
        pid = os.pread(lock_fd, 32, 0).decode("ascii", "replace").strip()
        if pid:
            return pid
        time.sleep(PID_REREAD_SECONDS)
    return "unknown"


# macOS: getsockopt(SOL_LOCAL, LOCAL_PEERCRED) returns a struct xucred (version, uid, ...).
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    if sys.platform.startswith("linux"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, struct.calcsize("2I") + 64)
    _version, uid = struct.unpack_from("2I", raw)
    return int(uid)
