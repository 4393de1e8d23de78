"""Shared helpers of the reliability suite: a recording STS, sandboxes, polling, leak checks.

Everything a reliability test's daemon says (its log, `credctl`'s output and
errors) is handed to `LeakWatch`, which knows every secret the run made: the
sandbox's long-term secret, each session secret and token the STS double
issued, and the canary codes fed. The session-wide check in conftest.py fails
the run if any of them shows up anywhere.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from support.daemon import LONG_TERM_SECRET, Sandbox
from support.fake_sts import FakeSts

T = TypeVar("T")

ACCOUNT = "123456789012"
MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/alice"

# TOTP codes fed in the reliability suite. Unlikely to turn up by chance in a log
# line (timestamps, pids and ports never hold these runs of digits).
CANARY_CODES = ("913579", "864209", "702481", "530917", "471635", "286420")


def role_policy(*names: str, duration: str = "1h", extra: str = "") -> str:
    """A policy of roles on the long-term keys of [default]: renewed with no code."""
    body = "".join(
        f"  {name}:\n"
        "    source_profile: default\n"
        f"    role_arn: arn:aws:iam::{ACCOUNT}:role/{name.title().replace('-', '')}\n"
        for name in names
    )
    return (
        "version: 1\n"
        f"defaults:\n  duration: {duration}\n  refresh_before: 15m\n  region: us-east-1\n"
        f"{extra}profiles:\n{body}"
    )


def session_policy(name: str = "session-alice") -> str:
    """A policy with one MFA session (it needs a code)."""
    return (
        "version: 1\n"
        "defaults:\n  duration: 1h\n  refresh_before: 15m\n  region: us-east-1\n"
        f"profiles:\n  {name}:\n    source_profile: default\n    mfa_serial: {MFA_SERIAL}\n"
    )


class RecordingSts(FakeSts):
    """FakeSts that also remembers every secret key and session token it hands out."""

    _SECRET = re.compile(r"<SecretAccessKey>([^<]+)</SecretAccessKey>")
    _TOKEN = re.compile(r"<SessionToken>([^<]+)</SessionToken>")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.issued_secrets: list[str] = []

    def _issue(self, now: Any, duration: int, arn: str, user_id: str) -> str:
        xml = super()._issue(now, duration, arn, user_id)
        for pattern in (self._SECRET, self._TOKEN):
            found = pattern.search(xml)
            if found:
                self.issued_secrets.append(found.group(1).replace("&amp;", "&"))
        return xml


@dataclass
class LeakWatch:
    """Collects text that must never hold a secret, and the secrets to look for."""

    secrets: set[str] = field(default_factory=lambda: {LONG_TERM_SECRET, *CANARY_CODES})
    texts: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def secret(self, *values: str) -> None:
        """Add values that must never be seen."""
        with self._lock:
            self.secrets.update(v for v in values if v)

    def text(self, where: str, text: str) -> None:
        """Add text to check (a log, an error, a status output)."""
        with self._lock:
            self.texts.append((where, text))

    def leaks(self) -> list[str]:
        """Each (place, which secret) found; a secret counts when 12 characters of it show."""
        found: list[str] = []
        with self._lock:
            needles: list[tuple[str, str]] = []
            for value in self.secrets:
                if len(value) <= 12:
                    needles.append((value, value))
                else:
                    # A slice from the middle: a token's fixed prefix is not a leak.
                    middle = len(value) // 2
                    needles.append((value, value[middle - 6 : middle + 6]))
            for where, text in self.texts:
                for value, needle in needles:
                    if needle in text:
                        found.append(f"{where}: {value[:4]}... ({len(value)} chars)")
        return found


WATCH = LeakWatch()


class Box(Sandbox):
    """A Sandbox whose daemon log and credctl output feed `WATCH`."""

    def ctl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run credctl; its output is checked for secrets unless it prints them by design."""
        done = super().ctl(*args, input=input, timeout=timeout)
        if args[:1] != ("credential-process",):
            WATCH.text(f"credctl {' '.join(args[:1])} stdout", done.stdout)
        WATCH.text(f"credctl {' '.join(args[:1])} stderr", done.stderr)
        return done

    def close(self) -> None:
        """End the daemon and hand its log to the leak check."""
        super().close()
        WATCH.text(f"credd log {self.root}", self.log_text())

    def status_of(self, name: str) -> dict[str, Any]:
        """One profile's entry of `credctl status --json`."""
        return next(p for p in self.status()["profiles"] if p["name"] == name)

    def temp_files(self) -> list[Path]:
        """Temp files the writer left beside the credentials file."""
        target = Path(os.path.realpath(self.credentials))
        return sorted(target.parent.glob(f".{target.name}.credd-tmp-*"))


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last!r}")
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    """The resident set size of `pid` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors `pid` holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raw_request(path: Path, payload: bytes, *, timeout: float = 5.0, shut: bool = True) -> bytes:
    """Send raw bytes to the control socket and return all that comes back until EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            sock.sendall(payload)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def replies(data: bytes) -> list[dict[str, Any]]:
    """The JSON lines in `data`."""
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def kill_quietly(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """End processes this test started (by their own handle)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
