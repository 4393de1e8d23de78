"""Talking to the service manager: systemd's sd_notify, and a watchdog of our own for launchd.

This is the only module that imports `sdnotify`. sdnotify swallows every
error, including a message that is not latin-1, so everything sent from here
is forced to ASCII first: a STATUS that vanished silently would look like a
daemon that never changes state.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import sdnotify

from credd.states import State

log = logging.getLogger(__name__)

# systemd shows STATUS= in one line of `systemctl status`; a long one is only noise.
MAX_STATUS_CHARS = 200

# The exit status of a daemon whose event loop stalled (EX_SOFTWARE): not 2, so
# systemd's RestartPreventExitStatus=2 does not stop it from being restarted.
STALLED_EXIT_STATUS = 70

# Order of the states in a status line; `awaiting code` comes last because the
# names of the waiting profiles follow it.
_STATUS_ORDER = (State.FRESH, State.REFRESHING, State.PENDING, State.EXPIRED, State.ERROR)


def _ascii_line(text: str) -> str:
    """`text` as one printable ASCII line: other characters escaped, whitespace runs folded."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    printable = "".join(ch if ch.isprintable() else " " for ch in escaped)
    line = " ".join(printable.split())
    if len(line) > MAX_STATUS_CHARS:
        line = line[: MAX_STATUS_CHARS - 3] + "..."
    return line


def status_line(counts: Mapping[str, int], awaiting: Sequence[str]) -> str:
    """The one-line summary systemd shows as the unit's status.

    `counts` maps a state name (`State` values) to how many profiles are in
    it; `awaiting` names the profiles waiting for a code, longest-waiting
    first. "3 fresh, 1 awaiting code: session-x". Pure; ASCII only, a
    non-ASCII profile name arrives backslash-escaped.
    """
    parts = [f"{counts[state]} {state}" for state in _STATUS_ORDER if counts.get(state, 0) > 0]
    known = {str(state) for state in (*_STATUS_ORDER, State.AWAITING_CODE)}
    parts += [f"{n} {name}" for name, n in sorted(counts.items()) if name not in known and n > 0]
    waiting = len(awaiting) or counts.get(State.AWAITING_CODE, 0)
    if waiting:
        names = ", ".join(awaiting)
        parts.append(f"{waiting} awaiting code" + (f": {names}" if names else ""))
    return _ascii_line(", ".join(parts) if parts else "no profiles")


class _Notifier(sdnotify.SystemdNotifier):  # type: ignore[misc]
    """sdnotify's notifier, connected to an address we pass rather than `os.environ`'s."""

    def __init__(self, address: str) -> None:
        self.debug = False
        # An abstract socket is written "@name" in the environment.
        target = "\0" + address[1:] if address.startswith("@") else address
        self.socket: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.socket.connect(target)
        except OSError as exc:
            self.socket.close()
            self.socket = None
            log.warning("cannot reach the service manager at NOTIFY_SOCKET=%s: %s", address, exc)


class ServiceNotifier:
    """Tells systemd how the daemon is doing (sd_notify). Does nothing outside systemd.

    `env` is read once: NOTIFY_SOCKET (where to send), WATCHDOG_USEC and
    WATCHDOG_PID (whether and how often to ping the watchdog).
    """

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        address = env.get("NOTIFY_SOCKET", "")
        self._notifier = _Notifier(address) if address else None
        self.enabled: bool = self._notifier is not None and self._notifier.socket is not None
        self._watchdog_usec = _watchdog_usec(env)
        self._last_status: str | None = None

    def _send(self, *fields: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(fields))

    def ready(self, status: str) -> None:
        """READY=1 with a status: the policy is loaded, the socket listens, the plan is made.

        Also the end of a reload begun with `reloading()`.
        """
        line = _ascii_line(status)
        self._last_status = line
        self._send("READY=1", f"STATUS={line}")

    def status(self, text: str) -> None:
        """STATUS=, as one ASCII line, sent only when it differs from the last one sent."""
        line = _ascii_line(text)
        if line == self._last_status:
            return
        self._last_status = line
        self._send(f"STATUS={line}")

    def reloading(self) -> None:
        """RELOADING=1 with the monotonic time; `ready()` must follow when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """STOPPING=1: the daemon has begun to shut down."""
        self._send("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between two `watchdog()` calls (half of WATCHDOG_USEC), or None if not asked."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def watchdog(self) -> None:
        """WATCHDOG=1: the event loop is alive."""
        self._send("WATCHDOG=1")


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC when it is meant for this process (sd_watchdog_enabled's rules)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec


class LoopWatchdog:
    """A watchdog for service managers that have none (launchd).

    The event loop calls `beat()`; a daemon thread checks that it does, and
    when `timeout` seconds pass without a beat it logs one line and ends the
    process at once with status 70, so that the service manager (launchd's
    KeepAlive) starts a fresh one. `clock` and `exit` are for tests. The clock
    is monotonic, which stops while the machine sleeps, so a laptop waking up
    does not count as a stall.
    """

    def __init__(
        self,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._clock = clock
        self._exit = exit
        self._lock = threading.Lock()
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching; the timeout counts from now."""
        if self._thread is not None:
            return
        self.beat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="credd-loop-watchdog", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """The event loop is alive."""
        with self._lock:
            self._last_beat = self._clock()

    def stop(self) -> None:
        """Stop watching (before a clean shutdown, which may legitimately be slow)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def check(self) -> bool:
        """One check: True if the loop beat recently; otherwise log and call `exit`."""
        with self._lock:
            stalled = self._clock() - self._last_beat
        if stalled < self.timeout:
            return True
        log.critical(
            "event loop stalled for %.0f s (limit %.0f s); exiting with status %d to be restarted",
            stalled,
            self.timeout,
            STALLED_EXIT_STATUS,
        )
        self._exit(STALLED_EXIT_STATUS)
        return False

    def _run(self) -> None:
        # Check several times per timeout so a stall is caught within ~1.25 timeouts.
        period = min(self.timeout / 4, 5.0)
        while not self._stop.wait(period):
            if not self.check():
                return
