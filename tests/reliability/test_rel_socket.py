"""The control socket and the process: single instance, stale sockets, strangers, abuse."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from relsupport import (
    Box,
    open_fds,
    raw_request,
    replies,
    role_policy,
    rss_kib,
    session_policy,
    wait_until,
)
from support.daemon import CREDD

from credd.errors import Fault
from credd.protocol import IDLE_TIMEOUT_SECONDS, MAX_REQUEST_BYTES

NOBODY = 65534


def _exited(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
    return next((p for p in procs if p.poll() is not None), None)


@pytest.mark.slow
@pytest.mark.case(
    "Socket and process",
    "two `credd run` started at the same instant",
    "exactly one serves; the other exits 1 naming its pid; the live socket is never removed",
)
def test_two_daemons_started_at_once_leave_exactly_one(make_box: Callable[..., Box]) -> None:
    """Three rounds of two `credd run` launched back to back on one socket: one keeps
    serving (status answers with its pid), the other exits 1 with `pid <winner>`, and the
    socket file the winner bound is the same inode afterwards."""
    box = make_box(policy_text=session_policy())
    for round_ in range(3):
        logs = [box.root / f"race-{round_}-{i}.log" for i in range(2)]
        procs: list[subprocess.Popen[bytes]] = []
        for log in logs:
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [CREDD, "run"], env=box.env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        try:
            loser = wait_until("one of the two to exit", partial(_exited, procs), timeout=30)
            winner = next(p for p in procs if p is not loser)
            text = logs[procs.index(loser)].read_text()
            assert loser.returncode == 1, text
            assert f"already running (pid {winner.pid})" in text, text
            wait_until("the winner to answer", lambda: box.ctl("status").returncode == 0)
            inode = box.socket.stat().st_ino
            assert box.status()["daemon"]["pid"] == winner.pid
            assert winner.poll() is None
            assert box.socket.stat().st_ino == inode
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
        for log in logs:
            from relsupport import WATCH

            WATCH.text(str(log), log.read_text(errors="replace"))


@pytest.mark.slow
@pytest.mark.case(
    "Socket and process",
    "a stale socket after kill -9",
    "replaced at the next start; the new daemon answers",
)
def test_a_stale_socket_after_kill_9_is_replaced(make_box: Callable[..., Box]) -> None:
    """kill -9 leaves the socket file and the lock file; the next `credd run` takes the
    lock, unlinks the stale socket (connections to it are refused), binds a new one and
    answers with its own pid."""
    box = make_box(policy_text=session_policy())
    first = box.start()
    assert box.stop(signal.SIGKILL) == -signal.SIGKILL
    assert box.socket.exists()
    with pytest.raises(ConnectionRefusedError), socket.socket(socket.AF_UNIX) as probe:
        probe.connect(str(box.socket))
    second = box.start()
    assert box.status()["daemon"]["pid"] == second.pid != first.pid


def _as_nobody(path: Path, payload: bytes) -> bytes:
    """Connect to `path` as uid nobody (a forked child) and return everything it received."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            got = raw_request(path, payload, timeout=10, shut=False)
            os.write(write_end, b"ok:" + got)
        except BaseException as error:
            os.write(write_end, f"error:{type(error).__name__}: {error}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.case(
    "Socket and process",
    "a client of another uid (socket opened up on purpose)",
    "refused before any request is read: EOF, no answer; the daemon logs the uid",
)
def test_a_client_of_another_uid_is_refused(make_box: Callable[..., Box]) -> None:
    """With the socket and its directories chmod'ed open, uid nobody can connect, but
    the daemon checks SO_PEERCRED first and closes: no reply to its `status` request,
    a log line naming uid 65534, and our own client still answered."""
    box = make_box(policy_text=session_policy())
    box.start()
    box.sockdir.chmod(0o711)
    box.socket.parent.chmod(0o711)
    box.socket.chmod(0o666)
    got = _as_nobody(box.socket, b'{"op":"status"}\n')
    assert got == b"ok:", got
    wait_until(
        "the refusal in the log",
        lambda: f"refused a control connection from uid {NOBODY}" in box.log_text(),
    )
    assert box.ctl("status").returncode == 0


def _drip(path: Path, stop: threading.Event, closed: list[float]) -> None:
    """A client that sends one byte of a request every half second and never finishes it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        started = time.monotonic()
        while not stop.wait(0.5):
            try:
                sock.sendall(b" ")
            except OSError:
                closed.append(time.monotonic() - started)
                return


@contextlib.contextmanager
def _idle_connections(path: Path, count: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(path))
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _start_limited(box: Box, nofile: int | None) -> subprocess.Popen[bytes]:
    """`credd run` with RLIMIT_NOFILE lowered to `nofile` (soft and hard), if given."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with box.log.open("ab") as log:
        box.proc = subprocess.Popen(
            [CREDD, "run", "--log-level", "debug"],
            env=box.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,  # noqa: PLW1509 (it only calls setrlimit)
        )
    box.wait_ready()
    return box.proc


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.case(
    "Socket and process",
    "oversized requests, no newline, binary garbage, unknown ops, "
    "500 idle connections and slow-drip clients at once",
    "each answered with an error or closed; RSS bounded; `credctl status` answers throughout",
)
@pytest.mark.parametrize("nofile", [None, 160], ids=["default-nofile", "nofile-160"])
def test_abusive_clients_never_stall_the_daemon(
    make_box: Callable[..., Box], nofile: int | None
) -> None:
    """500 idle connections (more than the connection cap, and with RLIMIT_NOFILE=160 more
    than the daemon has descriptors), 10 slow-drip clients and malformed requests at once:
    malformed ones get their fault code, `credctl status` answers every time, the idle and
    slow ones are closed by the idle timeout, RSS grows by less than 32 MiB and the
    descriptors come back."""
    box = make_box(policy_text=role_policy("role-a"))
    proc = _start_limited(box, nofile)
    box.wait_states({"role-a": "fresh"})
    base_rss, base_fds = rss_kib(proc.pid), open_fds(proc.pid)

    stop = threading.Event()
    closed: list[float] = []
    drips = [
        threading.Thread(target=_drip, args=(box.socket, stop, closed), daemon=True)
        for _ in range(10)
    ]
    for thread in drips:
        thread.start()
    try:
        with _idle_connections(box.socket, 500) as idle:
            for _ in range(5):
                done = box.ctl("status", "--json", timeout=15)
                assert done.returncode == 0, (done.stderr, box.log_text()[-2000:])
                assert json.loads(done.stdout)["profiles"][0]["state"] == "fresh"

            def fault(payload: bytes, *, shut: bool = True) -> int:
                answer = replies(raw_request(box.socket, payload, timeout=15, shut=shut))
                assert len(answer) == 1 and answer[0]["ok"] is False, answer
                return int(answer[0]["error"]["code"])

            assert fault(b"x" * (MAX_REQUEST_BYTES * 64) + b"\n") == Fault.REQUEST_TOO_LARGE
            assert fault(b"{" * (MAX_REQUEST_BYTES + 10)) == Fault.REQUEST_TOO_LARGE
            assert fault(b"\x00\xff\xfe garbage \x80\x81\n") == Fault.BAD_REQUEST
            assert fault(b'{"op": "status"') == Fault.BAD_REQUEST  # no newline, then EOF
            assert fault(b'{"op": "rm -rf"}\n') == Fault.UNKNOWN_OP
            assert fault(b'["op", "status"]\n') == Fault.BAD_REQUEST
            assert fault(b'{"op": "token", "code": "\xd9\xa1\xd9\xa2"}\n') == Fault.BAD_CODE
            assert box.ctl("status").returncode == 0
            assert rss_kib(proc.pid) - base_rss < 32 * 1024

            # The idle connections are dropped by the daemon: EOF on ours.
            deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS + 15
            for sock in idle[-20:]:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(1) == b""
        wait_until(
            "the slow-drip clients to be cut off",
            lambda: len(closed) == len(drips),
            timeout=IDLE_TIMEOUT_SECONDS + 15,
        )
    finally:
        stop.set()
        for thread in drips:
            thread.join(5)
    wait_until(
        "the daemon's descriptors to come back",
        lambda: open_fds(proc.pid) <= base_fds + 5,
        timeout=15,
    )
    assert box.ctl("status").returncode == 0
    assert rss_kib(proc.pid) - base_rss < 32 * 1024
    assert proc.poll() is None
