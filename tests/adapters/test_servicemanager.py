"""credd.adapters.servicemanager: sd_notify as systemd receives it; the launchd watchdog."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.adapters.servicemanager import (
    STALLED_EXIT_STATUS,
    LoopWatchdog,
    ServiceNotifier,
    status_line,
)


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(2)

    def receive(self) -> str:
        """The next message, as systemd reads it (bytes decoded as ASCII: any other byte fails)."""
        return self.sock.recv(4096).decode("ascii")

    def pending(self) -> list[str]:
        """Every message already sent and not yet received."""
        messages = []
        self.sock.setblocking(False)
        try:
            while True:
                messages.append(self.sock.recv(4096).decode("ascii"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2)
        return messages


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # Short and under /tmp: Unix socket paths are limited to about 104 bytes.
    with tempfile.TemporaryDirectory(prefix="credd-", dir="/tmp") as tmp:
        sock = NotifySocket(os.path.join(tmp, "notify"))
        try:
            yield sock
        finally:
            sock.sock.close()


def notifier_for(sock: NotifySocket, **extra: str) -> ServiceNotifier:
    return ServiceNotifier({"NOTIFY_SOCKET": sock.path, **extra})


def test_ready_sends_ready_and_status(notify_socket: NotifySocket) -> None:
    """READY=1 and the first STATUS= travel in one datagram."""
    notifier = notifier_for(notify_socket)
    assert notifier.enabled
    notifier.ready("1 pending")
    assert notify_socket.receive() == "READY=1\nSTATUS=1 pending"


def test_status_is_sent_only_when_it_changes(notify_socket: NotifySocket) -> None:
    """A status equal to the last one sent (by ready() or status()) is not sent again."""
    notifier = notifier_for(notify_socket)
    notifier.ready("1 awaiting code: session-x")
    notifier.status("1 awaiting code: session-x")
    notifier.status("1 fresh")
    notifier.status("1 fresh")
    notifier.status("1 awaiting code: session-x")
    assert notify_socket.pending() == [
        "READY=1\nSTATUS=1 awaiting code: session-x",
        "STATUS=1 fresh",
        "STATUS=1 awaiting code: session-x",
    ]


def test_status_is_forced_to_one_ascii_line(notify_socket: NotifySocket) -> None:
    """Non-ASCII text arrives escaped and newlines cannot start a second field.

    sdnotify drops a message it cannot encode without a word, and a newline in
    STATUS= would smuggle in another assignment such as READY=1.
    """
    notifier = notifier_for(notify_socket)
    notifier.status("1 awaiting code: séssion-日本\nREADY=1")
    message = notify_socket.receive()
    assert message == "STATUS=1 awaiting code: s\\xe9ssion-\\u65e5\\u672c READY=1"
    assert "\n" not in message


def test_reloading_carries_the_monotonic_clock(notify_socket: NotifySocket) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC, CLOCK_MONOTONIC in microseconds."""
    notifier = notifier_for(notify_socket)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic = notify_socket.receive().split("\n")
    assert reloading == "RELOADING=1"
    key, _, value = monotonic.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_stopping_and_watchdog(notify_socket: NotifySocket) -> None:
    """STOPPING=1 and WATCHDOG=1 are sent as they are."""
    notifier = notifier_for(notify_socket)
    notifier.watchdog()
    notifier.stopping()
    assert notify_socket.pending() == ["WATCHDOG=1", "STOPPING=1"]


def test_abstract_notify_socket() -> None:
    """NOTIFY_SOCKET=@name addresses a socket in the abstract namespace (Linux)."""
    if os.uname().sysname != "Linux":
        pytest.skip("abstract Unix sockets are Linux only")
    name = f"credd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        ServiceNotifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert sock.recv(100) == b"STOPPING=1"


def test_disabled_without_notify_socket() -> None:
    """Outside systemd every call is a silent no-op."""
    notifier = ServiceNotifier({})
    assert not notifier.enabled
    notifier.ready("x")
    notifier.status("y")
    notifier.reloading()
    notifier.stopping()
    notifier.watchdog()
    assert notifier.watchdog_interval() is None


def test_disabled_when_notify_socket_is_unreachable(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET nobody listens on disables the notifier instead of failing."""
    notifier = ServiceNotifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    assert not notifier.enabled
    notifier.ready("x")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "nope"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    """Half of WATCHDOG_USEC in seconds, unless WATCHDOG_PID names another process."""
    assert ServiceNotifier(env).watchdog_interval() == expected


@pytest.mark.parametrize(
    ("counts", "awaiting", "expected"),
    [
        ({"fresh": 3, "awaiting-code": 1}, ["session-x"], "3 fresh, 1 awaiting code: session-x"),
        (
            {"awaiting-code": 2, "error": 1, "fresh": 1},
            ["session-b", "session-a"],
            "1 fresh, 1 error, 2 awaiting code: session-b, session-a",
        ),
        ({"pending": 2, "fresh": 0}, [], "2 pending"),
        (
            {"refreshing": 1, "expired": 1, "pending": 1, "fresh": 1, "error": 1},
            [],
            "1 fresh, 1 refreshing, 1 pending, 1 expired, 1 error",
        ),
        ({}, [], "no profiles"),
        ({"awaiting-code": 1}, ["séssion"], "1 awaiting code: s\\xe9ssion"),
    ],
)
def test_status_line(counts: dict[str, int], awaiting: list[str], expected: str) -> None:
    """One ASCII line; the profiles awaiting a code are named last, after `awaiting code`."""
    line = status_line(counts, awaiting)
    assert line == expected
    assert line.isascii()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeExit:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.called = threading.Event()

    def __call__(self, status: int) -> None:
        self.statuses.append(status)
        self.called.set()


def test_loop_watchdog_check_fires_only_after_timeout() -> None:
    """A check passes while beats are recent and exits with 70 once none came for `timeout`."""
    clock, exit_ = FakeClock(), FakeExit()
    watchdog = LoopWatchdog(120, clock=clock, exit=exit_)
    for _ in range(10):
        clock.now += 100
        watchdog.beat()
        assert watchdog.check()
    clock.now += 119.9
    assert watchdog.check()
    clock.now += 0.1
    assert not watchdog.check()
    assert exit_.statuses == [STALLED_EXIT_STATUS]


def test_loop_watchdog_thread_fires_after_a_stall(caplog: pytest.LogCaptureFixture) -> None:
    """The watching thread logs one line and exits when the loop stops beating."""
    clock, exit_ = FakeClock(), FakeExit()
    watchdog = LoopWatchdog(0.2, clock=clock, exit=exit_)
    watchdog.start()
    try:
        clock.now += 0.3
        assert exit_.called.wait(5)
    finally:
        watchdog.stop()
    assert exit_.statuses == [STALLED_EXIT_STATUS]
    assert [r.levelname for r in caplog.records] == ["CRITICAL"]
    assert "stalled" in caplog.records[0].getMessage()


def test_loop_watchdog_thread_is_quiet_while_beating() -> None:
    """Regular beats keep the watching thread quiet, however long the loop runs."""
    clock, exit_ = FakeClock(), FakeExit()
    watchdog = LoopWatchdog(0.2, clock=clock, exit=exit_)
    watchdog.start()
    try:
        deadline = time.monotonic() + 0.6  # several periods of the watching thread
        while time.monotonic() < deadline:
            clock.now += 0.05
            watchdog.beat()
            time.sleep(0.01)
    finally:
        watchdog.stop()
    assert not exit_.called.is_set()


def test_loop_watchdog_stop_ends_the_thread() -> None:
    """After stop() a stall goes unpunished: a clean shutdown may take its time."""
    clock, exit_ = FakeClock(), FakeExit()
    watchdog = LoopWatchdog(0.2, clock=clock, exit=exit_)
    watchdog.start()
    watchdog.stop()
    clock.now += 10
    time.sleep(0.2)
    assert not exit_.called.is_set()
