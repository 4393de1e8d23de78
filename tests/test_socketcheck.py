"""credd.socketcheck: the socket directory's check and the peer's uid, shared by both ends."""

from __future__ import annotations

import os
import socket
import stat
import sys

import pytest

from credd import socketcheck
from credd.socketcheck import directory_problem, peer_uid

ME = 1000


def lstat_of(mode: int, uid: int = ME) -> os.stat_result:
    """An `os.lstat` result with this mode and owner (the other fields do not matter)."""
    return os.stat_result((mode, 1, 1, 1, uid, uid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("info", "words"),
    [
        (lstat_of(stat.S_IFLNK | 0o777), ["/t/d is a symlink (owned by uid 1000)", "CREDD_SOCKET"]),
        (lstat_of(stat.S_IFREG | 0o600), ["/t/d is not a directory (owned by uid 1000)"]),
        (
            lstat_of(stat.S_IFDIR | 0o700, uid=65534),
            ["/t/d belongs to uid 65534, not to you (uid 1000)", "CREDD_SOCKET"],
        ),
        (lstat_of(stat.S_IFDIR | 0o770), ["(mode 0770): run chmod 700 /t/d"]),
        (lstat_of(stat.S_IFDIR | 0o1777), ["(mode 1777): run chmod 700 /t/d"]),
        (lstat_of(stat.S_IFDIR | 0o702), ["(mode 0702)"]),
    ],
)
def test_each_untrusted_directory_names_what_was_found_and_the_fix(
    info: os.stat_result, words: list[str]
) -> None:
    """A symlink, a non-directory, another owner, a group- or world-writable mode:
    each is refused with the path, the owner or mode found, and what to do."""
    problem = directory_problem("/t/d", info, ME)
    assert problem is not None
    assert "\n" not in problem
    for word in words:
        assert word in problem


@pytest.mark.parametrize("mode", [0o700, 0o711, 0o755, 0o500])
def test_a_directory_of_ones_own_that_others_cannot_write_passes(mode: int) -> None:
    """Ours, a real directory, and no write bit for group or others."""
    assert directory_problem("/t/d", lstat_of(stat.S_IFDIR | mode), ME) is None


def test_peer_uid_on_linux_is_the_uid_at_the_other_end() -> None:
    """A socketpair's peer is this very process."""
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(left) == os.getuid()


class _XucredSocket:
    """What getsockopt(SOL_LOCAL, LOCAL_PEERCRED) answers on macOS: a struct xucred."""

    def __init__(self, version: int, uid: int) -> None:
        self.raw = b"".join(
            [
                version.to_bytes(4, sys.byteorder),
                uid.to_bytes(4, sys.byteorder),
                (1).to_bytes(2, sys.byteorder) + b"\0\0",
                bytes(64),
            ]
        )
        self.asked: tuple[int, int, int] | None = None

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        self.asked = (level, option, size)
        return self.raw[:size]


def test_peer_uid_off_linux_reads_the_xucred(monkeypatch: pytest.MonkeyPatch) -> None:
    """The macOS branch (not runnable on this Linux machine): SOL_LOCAL 0, LOCAL_PEERCRED 1,
    the whole 76-byte struct asked for, and the uid read after the version."""
    monkeypatch.setattr(socketcheck, "_LINUX", False)
    fake = _XucredSocket(version=0, uid=501)
    assert peer_uid(fake) == 501  # type: ignore[arg-type]
    assert fake.asked == (0, 1, 76)


def test_peer_uid_off_linux_refuses_an_unknown_xucred_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A struct of another version is not read as if it were the known one."""
    monkeypatch.setattr(socketcheck, "_LINUX", False)
    with pytest.raises(OSError, match="xucred"):
        peer_uid(_XucredSocket(version=7, uid=501))  # type: ignore[arg-type]
