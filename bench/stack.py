"""What the benchmarks run against: moto's server as the local STS, sandboxed HOMEs, real daemons.

Nothing here reaches past 127.0.0.1: every process gets an environment that
points the AWS SDK at the local STS and a HOME of its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import http.client
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The local-STS helpers the tests use (tests/support/moto_sts.py); bench/run.py puts
# tests/ on the path.
from support.moto_sts import answers, free_port

BIN = Path(sys.executable).parent
PYTHON = sys.executable
CREDD = str(BIN / "credd")
CREDCTL = str(BIN / "credctl")
AWS = str(BIN / "aws")
AWS_MFA = str(BIN / "aws-mfa")

KEY_ID = "AKIAEXAMPLEBENCH0001"
SECRET = "benchLongTermSecret000000000000000000000"
ACCOUNT = "123456789012"


def mfa_serial(index: int) -> str:
    """The ARN of the benchmark's MFA device number `index`."""
    return f"arn:aws:iam::{ACCOUNT}:mfa/bench{index}"


def session_name(index: int) -> str:
    """The profile name of MFA session number `index`."""
    return f"session-{index}"


# ---------------------------------------------------------------------- the local STS


@dataclass
class Moto:
    """moto's server on 127.0.0.1, started by us and stopped by its pid."""

    url: str
    proc: subprocess.Popen[bytes]

    def reset(self) -> None:
        """Forget every session moto holds, so its growing state does not skew later rounds."""
        connection = http.client.HTTPConnection(self.url.removeprefix("http://"), timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            connection.getresponse().read()
        finally:
            connection.close()


@contextmanager
def moto_server(log: Path) -> Iterator[Moto]:
    """Start moto's server (via local_sts.py) on a free port for as long as the `with` lasts."""
    port = free_port()
    program = [PYTHON, str(Path(__file__).with_name("local_sts.py"))]
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [*program, "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not start; see {log}")
            time.sleep(0.1)
        yield Moto(f"http://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- homes and policies


def chain_policy(sessions: int, roles_per_session: int, *, rotate_every: str = "") -> str:
    """A policy of `sessions` MFA sessions on the long-term keys, each with chained roles;
    with `rotate_every`, the long-term key is rotated on that schedule."""
    lines = [
        "version: 1",
        "defaults:",
        "  duration: 12h",
        "  refresh_before: 15m",
        "  region: us-east-1",
        "profiles:",
    ]
    for s in range(sessions):
        lines += [
            f"  {session_name(s)}:",
            "    source_profile: default",
            f"    mfa_serial: {mfa_serial(s)}",
        ]
        if rotate_every:
            lines.append(f"    rotate_every: {rotate_every}")
    for s in range(sessions):
        for r in range(roles_per_session):
            lines += [
                f"  role-{s}-{r}:",
                f"    source_profile: {session_name(s)}",
                f"    role_arn: arn:aws:iam::{ACCOUNT}:role/bench-{s}-{r}",
                "    duration: 1h",
            ]
    return "\n".join(lines) + "\n"


def long_term_file(key_id: str = KEY_ID, secret: str = SECRET) -> str:
    """A credentials file holding only the long-term keys (and a comment credd must keep)."""
    return (
        "# long-term keys\n[default]\n"
        f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    )


def iam_user(url: str, name: str) -> tuple[str, str]:
    """An IAM user in moto with one access key, for rotation to find: (key id, secret)."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIABENCHADMIN000000",
        aws_secret_access_key="bench",
    )
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@dataclass
class Home:
    """A sandboxed HOME with its own credentials file, policy and socket."""

    root: Path
    sts_url: str
    # More of the environment: the keyring's D-Bus address, an STS setting.
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.aws = self.root / ".aws"
        self.aws.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.credentials = self.aws / "credentials"
        self.policy = self.root / ".config" / "credd" / "policy.yaml"
        # credd trusts only a policy no one else can change: 0600 in 0700.
        self.policy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.policy.parent.chmod(0o700)
        # Short, under /tmp: Unix socket paths are limited to ~104 bytes.
        self.sockdir = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
        self.socket = self.sockdir / "s" / "credd.sock"

    def write(self, *, policy: str | None = None, credentials: str | None = None) -> None:
        """Lay down the policy and/or the credentials file (0600)."""
        if policy is not None:
            self.policy.write_text(policy)
            self.policy.chmod(0o600)
        if credentials is not None:
            self.credentials.write_text(credentials)
            self.credentials.chmod(0o600)

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process in this HOME: only the local STS is reachable."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {
            **keep,
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / ".config"),
            "CREDD_SOCKET": str(self.socket),
            "AWS_CONFIG_FILE": str(self.aws / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
            "AWS_ENDPOINT_URL_STS": self.sts_url,
            "AWS_ENDPOINT_URL": self.sts_url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "NO_COLOR": "1",
            **self.extra,
        }

    def cleanup(self) -> None:
        """Remove the socket directory (the HOME goes with the run's temp dir)."""
        shutil.rmtree(self.sockdir, ignore_errors=True)


# ---------------------------------------------------------------------- sd_notify


class NotifyListener:
    """A NOTIFY_SOCKET of our own: records when READY=1 arrives, drains everything else.

    Draining matters: credd sends STATUS= on state changes, and a datagram socket
    nobody reads would fill and block the daemon's sends.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.ready_at: float | None = None
        self.messages = 0
        self._ready = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed:
            readable, _, _ = select.select([self.sock], [], [], 0.2)
            if not readable:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            now = time.perf_counter()
            self.messages += 1
            if self.ready_at is None and b"READY=1" in data.split(b"\n"):
                self.ready_at = now
                self._ready.set()

    def wait_ready(self, timeout: float) -> float:
        """perf_counter() at which READY=1 arrived."""
        if not self._ready.wait(timeout):
            raise TimeoutError("no READY=1 from credd")
        assert self.ready_at is not None
        return self.ready_at

    def close(self) -> None:
        """Stop draining and remove the socket."""
        self._closed = True
        self._thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    """One real `credd run` in a Home, with READY timed from spawn."""

    home: Home
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready_after: float = 0.0
    notify: NotifyListener | None = field(default=None, repr=False)

    def start(self, *, timeout: float = 60.0) -> float:
        """Spawn `credd run` and wait for READY=1; return seconds from spawn to READY."""
        self.notify = NotifyListener(self.home.sockdir / "notify")
        env = {**self.home.env, "NOTIFY_SOCKET": str(self.notify.path)}
        with self.log.open("ab") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                [CREDD, "run", "--log-level", "warning"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = self.notify.wait_ready(timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"credd sent no READY=1 in {timeout}s; see {self.log}") from None
        self.ready_after = ready - self.started
        return self.ready_after

    @property
    def pid(self) -> int:
        """The daemon's pid."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM by pid, wait, and close the notify socket."""
        if self.proc is not None:
            _stop(self.proc)
        if self.notify is not None:
            self.notify.close()
            self.notify = None


# ---------------------------------------------------------------------- counting rewrites

_IN_MOVED_TO = 0x00000080
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class RenameWatcher:
    """Counts renames onto one file name in a directory (inotify IN_MOVED_TO), from outside.

    The safe writer replaces the file by rename, so each rewrite is one event;
    each is timestamped with perf_counter() as it is read.
    """

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init1(_IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, str(path.parent).encode(), _IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self._name = path.name.encode()
        self.times: list[float] = []
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            readable, _, _ = select.select([self._fd], [], [], 0.1)
            if not readable:
                continue
            data = os.read(self._fd, 65536)
            now = time.perf_counter()
            offset = 0
            while offset < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & _IN_MOVED_TO and name == self._name:
                    with self._lock:
                        self.times.append(now)

    @property
    def count(self) -> int:
        """Renames seen so far."""
        with self._lock:
            return len(self.times)

    def close(self) -> None:
        """Stop watching."""
        self._closed = True
        self._thread.join()
        os.close(self._fd)
