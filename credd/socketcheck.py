"""Whom each end of the control socket trusts: its own uid, in a directory only it can change.

Standard library only, and only what `credctl` loads anyway (`_socket`; `os`, `stat`,
`sys`): it checks both before it sends anything, a code above all, and `socket` or
`struct` would cost its start (bench/RESULTS.md #2). The daemon uses the same checks on
its side (credd/daemon/sockets.py, server.py).
"""

from __future__ import annotations

import _socket
import os
import stat
import sys

# Where the fix for a directory of someone else's is: a socket path of one's own.
_ELSEWHERE = "put the socket in a directory of your own (--socket or CREDD_SOCKET)"

_LINUX = sys.platform.startswith("linux")
# Linux: getsockopt(SOL_SOCKET, SO_PEERCRED) gives a struct ucred {pid_t, uid_t, gid_t}.
_UCRED_SIZE = 12
# macOS (and the BSDs): getsockopt(SOL_LOCAL, LOCAL_PEERCRED) gives a struct xucred
# {u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]}, what
# getpeereid(3) reads. `_socket` defines neither constant there.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
_XUCRED_SIZE = 76
_XUCRED_VERSION = 0


def directory_problem(path: str, info: os.stat_result, uid: int) -> str | None:
    """Why the socket's directory `path` (its `os.lstat`) cannot be trusted by `uid`, or None.

    Refused: a symlink or anything but a directory, a directory of another user (they
    could have made it first under /tmp and listen there), and one that group or others
    may write (they could swap the socket for theirs). Each reason names the path, the
    owner or mode found, and the fix.
    """
    owner = info.st_uid
    if stat.S_ISLNK(info.st_mode):
        return (
            f"{path} is a symlink (owned by uid {owner}), not a directory; remove it if it is"
            f" yours, or {_ELSEWHERE}"
        )
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory (owned by uid {owner}); {_ELSEWHERE}"
    if owner != uid:
        return (
            f"{path} belongs to uid {owner}, not to you (uid {uid}): another user may be"
            f" posing as credd; {_ELSEWHERE}"
        )
    if info.st_mode & 0o022:
        return (
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}):"
            f" run chmod 700 {path}"
        )
    return None


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket.

    For a client that is the uid the listener had when it called listen(); for the
    daemon, the uid of the client when it called connect(). OSError if it cannot be told.
    """
    if _LINUX:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED_SIZE)
        return int.from_bytes(raw[4:8], sys.byteorder)
    # Never run on a Mac here: written from <sys/ucred.h>; tests/test_socketcheck.py feeds
    # it a struct xucred through a fake socket.
    raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
    if len(raw) < 8 or int.from_bytes(raw[0:4], sys.byteorder) != _XUCRED_VERSION:
        raise OSError("LOCAL_PEERCRED gave no struct xucred")
    return int.from_bytes(raw[4:8], sys.byteorder)
