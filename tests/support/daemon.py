"""Real `credd run` processes driven by the real `credctl`, in a sandboxed HOME.

`Sandbox` lays out a HOME with long-term keys and a policy, an environment that
reaches only a local STS, and a short socket path under /tmp (the macOS limit
is 104 bytes). `Sandbox.start()` runs `credd run` and waits until its socket
answers; `Sandbox.ctl(...)` runs `credctl` and returns the completed process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CREDD = str(BIN / "credd")
CREDCTL = str(BIN / "credctl")
AWS = str(BIN / "aws")

LONG_TERM_KEY_ID = "AKIAEXAMPLELONGTERM1"
# Canary: must never appear in any log line, status output or error.
LONG_TERM_SECRET = "CANARYlongTermSecret0000000000000000000x"

CREDENTIALS_TEXT = f"""# Keys from the console; do not edit by hand\r
[default]\r
aws_access_key_id = {LONG_TERM_KEY_ID}\r
aws_secret_access_key = {LONG_TERM_SECRET}\r
\r
; someone else's profile, which credd must leave alone\r
[unrelated]\r
aws_access_key_id = AKIAUNRELATED0000000\r
aws_secret_access_key = unrelatedSecret\r
custom_key = kept\r
"""

MFA_SERIAL = "arn:aws:iam::123456789012:mfa/alice"

POLICY_TEXT = f"""version: 1
defaults:
  duration: 12h
  refresh_before: 15m
  region: us-east-1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
  prod-admin:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/Admin
  prod-ro:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/ReadOnly
    duration: 30m
"""


@dataclass
class Sandbox:
    """A HOME, an environment and a socket for one real credd."""

    root: Path
    sts_url: str
    policy_text: str = POLICY_TEXT
    credentials_text: str = CREDENTIALS_TEXT
    log_level: str = "debug"
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        (self.home / ".aws").mkdir(parents=True, exist_ok=True)
        # The policy is trusted only where no one else can change it (SPEC.md "Files and
        # locations"): 0600 in 0700, as `credd init` writes it.
        (self.home / ".config" / "credd").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / ".config" / "credd").chmod(0o700)
        self.credentials = self.home / ".aws" / "credentials"
        self.credentials.write_bytes(self.credentials_text.encode())
        self.credentials.chmod(0o600)
        self.policy = self.home / ".config" / "credd" / "policy.yaml"
        self.policy.write_text(self.policy_text)
        self.policy.chmod(0o600)
        self.sockdir = Path(tempfile.mkdtemp(prefix="cd-", dir="/tmp"))
        self.socket = self.sockdir / "s" / "credd.sock"
        self.log = self.root / "credd.log"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process in the sandbox: nothing reaches past 127.0.0.1."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {
            **keep,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CREDD_SOCKET": str(self.socket),
            "AWS_ENDPOINT_URL_STS": self.sts_url,
            "AWS_ENDPOINT_URL": self.sts_url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",  # the AWS CLI v1 reads only this one
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "NO_COLOR": "1",
            **self.extra_env,
        }

    def start(self, *args: str, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start `credd run`; with `wait`, return once its socket answers."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [CREDD, "run", "--log-level", self.log_level, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll `credctl status` until the daemon answers (or fail with its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"credd exited {self.proc.returncode}:\n{self.log_text()}")
            if self.ctl("status", "--json").returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"credd did not answer in {timeout}s:\n{self.log_text()}")

    def ctl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real credctl."""
        return subprocess.run(
            [CREDCTL, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def status(self) -> dict[str, Any]:
        """`credctl status --json`, parsed."""
        done = self.ctl("status", "--json")
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def states(self) -> dict[str, str]:
        """Each profile's state."""
        return {p["name"]: p["state"] for p in self.status()["profiles"]}

    def wait_states(self, want: dict[str, str], timeout: float = 30.0) -> dict[str, str]:
        """Poll until the named profiles are in the given states."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.states()
            if all(states.get(k) == v for k, v in want.items()):
                return states
            time.sleep(0.05)
        raise AssertionError(f"wanted {want}, have {states}\n{self.log_text()}")

    def log_text(self) -> str:
        """Everything the daemon logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the daemon and wait for it to exit; return its status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """End the daemon (if still running) and remove the socket directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.sockdir, ignore_errors=True)
