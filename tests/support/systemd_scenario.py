"""credd under a real `systemd --user` manager, step by step; prints a JSON report.

tests/e2e/test_systemd_e2e.py runs it beside a private manager
(support/systemd_user.py), as the manager's user, in its mount namespace:

    PYTHON systemd_scenario.py --bin-dir VENV/bin --home HOME --sts-url URL

with XDG_RUNTIME_DIR the manager's and HOME its HOME. It installs the unit with
`VENV/bin/credd install systemd`, points credd at the local STS at URL (moto's
server) through a drop-in, and drives the service with systemctl and credctl.
Each step is recorded as {"step", "ok", "detail"}; the first failure ends the
run, with the unit's status and log attached. Standard library only, so it
runs under any interpreter, as any user (`--keyring` aside: see below). Exit
status: 0 when every step passed, 1 otherwise.

With `--keyring` the source key lives in a real Secret Service (GNOME Keyring,
started here by secret_service.py, copied beside this script; it needs the
venv's jeepney): `credd keys import` moves it out of the file, the bus address
is put in the manager's environment as a desktop session does
(`dbus-update-activation-environment --systemd`, here `systemctl --user
set-environment`), and the unit renews the session from the keyring.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNIT = "credd"
SESSION = "session-e2e"
ROLE = "role-e2e"
WATCHDOG_SEC = 4
RESTART_SEC = 1

POLICY = f"""\
version: 1
defaults:
  region: us-east-1
profiles:
  {SESSION}:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/e2e
    duration: 1h
"""

POLICY_WITH_ROLE = (
    POLICY
    + f"""\
  {ROLE}:
    source_profile: {SESSION}
    role_arn: arn:aws:iam::123456789012:role/E2E
    duration: 1h
"""
)

INVALID_POLICY = f"""\
version: 1
profiles:
  {SESSION}:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/e2e
    duration: forever
    colour: blue
"""

LONG_TERM_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDENTIALS = f"""\
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = {LONG_TERM_SECRET}
"""

AWS_CONFIG = """\
[default]
region = us-east-1
"""


class StepFailed(Exception):
    """A step's check did not hold."""


class Scenario:
    """The manager, the sandbox HOME, and the report."""

    def __init__(self, bin_dir: Path, home: Path, sts_url: str) -> None:
        self.bin_dir = bin_dir
        self.home = home
        self.sts_url = sts_url
        self.runtime = Path(os.environ["XDG_RUNTIME_DIR"])
        self.socket = self.runtime / "credd" / "credd.sock"
        self.policy = self.home / ".config" / "credd" / "policy.yaml"
        self.credentials = self.home / ".aws" / "credentials"
        self.log = self.home / "credd.log"
        # Written by the drop-in's ExecStopPost: how the main process ended. systemctl
        # show cannot tell after a clean stop, when the unit's exec status is reset.
        self.stop_result = self.home / "stop-result"
        self.steps: list[dict[str, Any]] = []
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "NO_COLOR": "1",
        }
        # What the shell of the user would not have: the manager reads ~/.config itself.
        for key in ("XDG_CONFIG_HOME", "CREDD_SOCKET", "CREDD_POLICY", "NOTIFY_SOCKET"):
            self.env.pop(key, None)

    # -- helpers -----------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, timeout=timeout)

    def show(self, *props: str) -> dict[str, str]:
        result = self.systemctl("show", UNIT, *(f"--property={p}" for p in props))
        if result.returncode != 0:
            raise StepFailed(f"systemctl show failed: {result.stderr.strip()}")
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)

    def credctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin_dir / "credctl"), *args, timeout=timeout)

    def status_json(self) -> dict[str, Any]:
        result = self.credctl("status", "--json")
        if result.returncode != 0:
            raise StepFailed(f"credctl status --json exited {result.returncode}: {result.stderr}")
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def wait_for(
        self, what: str, check: Callable[[], Any], *, timeout: float = 20, every: float = 0.2
    ) -> Any:
        """Poll `check` until it returns something truthy; StepFailed naming `what` if never."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = check()
            except StepFailed as exc:
                last = str(exc)
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
                )
            time.sleep(every)

    def step(self, name: str, action: Callable[[], Any]) -> bool:
        """Run one step and record it; False if it failed."""
        started = time.monotonic()
        try:
            detail = action()
        except Exception as exc:  # any failure is a finding to report, not a crash
            self.steps.append(
                {
                    "step": name,
                    "ok": False,
                    "detail": f"{type(exc).__name__}: {exc}",
                    "seconds": round(time.monotonic() - started, 2),
                    "diagnostics": self.diagnostics(),
                }
            )
            return False
        self.steps.append(
            {
                "step": name,
                "ok": True,
                "detail": detail,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
        return True

    def diagnostics(self) -> dict[str, str]:
        status = self.systemctl("status", UNIT, timeout=10)
        log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"
        return {"systemctl status": status.stdout + status.stderr, "credd log (tail)": log}

    # -- steps ---------------------------------------------------------------------

    def write_sandbox(self) -> str:
        self.credentials.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.credentials.write_text(CREDENTIALS)
        self.credentials.chmod(0o600)
        (self.home / ".aws" / "config").write_text(AWS_CONFIG)
        # credd trusts only a policy no one else can change: 0600 in 0700.
        self.policy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.policy.parent.chmod(0o700)
        self.policy.write_text(POLICY)
        self.policy.chmod(0o600)
        return str(self.home)

    def install_unit(self) -> str:
        result = self.run(str(self.bin_dir / "credd"), "install", "systemd")
        if result.returncode != 0:
            raise StepFailed(f"credd install systemd exited {result.returncode}: {result.stderr}")
        unit = self.home / ".config" / "systemd" / "user" / "credd.service"
        if not unit.is_file():
            raise StepFailed(f"{unit} was not written; output: {result.stdout}")
        dropin = unit.parent / "credd.service.d" / "e2e.conf"
        dropin.parent.mkdir(exist_ok=True)
        dropin.write_text(
            "[Service]\n"
            f"Environment=AWS_ENDPOINT_URL_STS={self.sts_url} AWS_EC2_METADATA_DISABLED=true\n"
            f"WatchdogSec={WATCHDOG_SEC}\n"
            f"RestartSec={RESTART_SEC}\n"
            "TimeoutStartSec=30\n"
            # Keep the directory at stop, so "socket removed" is credd's doing, not systemd's.
            "RuntimeDirectoryPreserve=yes\n"
            f"StandardOutput=append:{self.log}\n"
            f"StandardError=append:{self.log}\n"
            'ExecStopPost=/bin/sh -c \'echo "$$SERVICE_RESULT $$EXIT_CODE $$EXIT_STATUS"'
            f" > {self.stop_result}'\n"
        )
        return result.stdout.strip()

    def daemon_reload(self) -> dict[str, str]:
        result = self.systemctl("daemon-reload")
        if result.returncode != 0:
            raise StepFailed(f"daemon-reload failed: {result.stderr}")
        cat = self.systemctl("cat", UNIT)
        # The interpreter of the venv that ran `credd install`: bin/python or bin/python3.
        exec_start = re.compile(
            rf"^ExecStart={re.escape(str(self.bin_dir))}/python[0-9.]* -m credd run$", re.M
        )
        if not exec_start.search(cat.stdout) or "e2e.conf" not in cat.stdout:
            raise StepFailed(f"systemctl cat shows an unexpected unit:\n{cat.stdout}{cat.stderr}")
        props = self.show("LoadState", "ActiveState", "Type", "NotifyAccess", "WatchdogUSec")
        if props.get("LoadState") != "loaded":
            raise StepFailed(f"unit not loaded: {props}")
        return props

    def start(self) -> dict[str, Any]:
        started = time.monotonic()
        result = self.systemctl("start", UNIT, timeout=60)
        seconds = round(time.monotonic() - started, 2)
        if result.returncode != 0:
            raise StepFailed(f"systemctl start failed after {seconds}s: {result.stderr.strip()}")
        props = self.show("ActiveState", "SubState", "MainPID", "StatusText")
        if props["ActiveState"] != "active" or props["SubState"] != "running":
            raise StepFailed(f"not running after start returned: {props}")
        if not props["StatusText"]:
            raise StepFailed("READY=1 came with no STATUS=")
        # The manager runs its units as its own user: the one running this scenario.
        uid = os.stat(f"/proc/{props['MainPID']}").st_uid
        if uid != os.getuid():
            raise StepFailed(f"credd runs as uid {uid}, the manager's user is {os.getuid()}")
        return {"seconds": seconds, "uid": uid, **props}

    def socket_is_private(self) -> dict[str, str]:
        st_dir = self.socket.parent.lstat()
        st_sock = self.socket.lstat()
        if not stat.S_ISSOCK(st_sock.st_mode):
            raise StepFailed(f"{self.socket} is not a socket")
        modes = {
            "dir": oct(stat.S_IMODE(st_dir.st_mode)),
            "socket": oct(stat.S_IMODE(st_sock.st_mode)),
        }
        if modes != {"dir": "0o700", "socket": "0o600"}:
            raise StepFailed(f"wrong modes: {modes}")
        return modes

    def status_text(self) -> str:
        return self.show("StatusText")["StatusText"]

    def awaiting_code(self) -> str:
        def check() -> str:
            text = self.status_text()
            return text if f"awaiting code: {SESSION}" in text else ""

        result: str = self.wait_for(f"StatusText naming {SESSION} as awaiting code", check)
        return result

    def feed_token(self) -> dict[str, str]:
        result = self.credctl("token", "123456")
        if result.returncode != 0:
            raise StepFailed(f"credctl token exited {result.returncode}: {result.stderr}")

        def fresh() -> str:
            text = self.status_text()
            return text if "awaiting code" not in text and "fresh" in text else ""

        text: str = self.wait_for("StatusText to leave `awaiting code`", fresh)
        written = self.credentials.read_text()
        if f"[{SESSION}]" not in written or "aws_session_token" not in written:
            raise StepFailed(f"{SESSION} was not written to {self.credentials}")
        return {"credctl": result.stdout.strip(), "StatusText": text}

    def watchdog(self) -> dict[str, Any]:
        first = self.show("WatchdogTimestampMonotonic", "NRestarts")
        # Longer than WatchdogSec: a daemon that did not ping would be killed meanwhile.
        time.sleep(WATCHDOG_SEC + 1.5)
        second = self.show("WatchdogTimestampMonotonic", "NRestarts", "ActiveState", "MainPID")
        t1, t2 = int(first["WatchdogTimestampMonotonic"]), int(second["WatchdogTimestampMonotonic"])
        if not t2 > t1 > 0:
            raise StepFailed(f"WatchdogTimestamp did not advance: {t1} -> {t2}")
        if second["ActiveState"] != "active" or second["NRestarts"] != first["NRestarts"]:
            raise StepFailed(f"the watchdog restarted credd: {first} -> {second}")
        return {"advanced_usec": t2 - t1, **second}

    def reload(self) -> dict[str, Any]:
        pid = self.show("MainPID")["MainPID"]
        self.policy.write_text(POLICY_WITH_ROLE)
        result = self.systemctl("reload", UNIT, timeout=30)
        if result.returncode != 0:
            raise StepFailed(f"systemctl reload failed: {result.stderr.strip()}")

        def role_listed() -> list[str]:
            names = [p["name"] for p in self.status_json()["profiles"]]
            return names if ROLE in names else []

        names = self.wait_for(f"{ROLE} in credctl status --json", role_listed)
        props = self.wait_for(
            "the unit to be active again after the reload",
            lambda: (p := self.show("ActiveState", "MainPID"))["ActiveState"] == "active" and p,
        )
        if props["MainPID"] != pid:
            raise StepFailed(f"reload restarted the process: {pid} -> {props['MainPID']}")
        return {"profiles": names, **props}

    def kill_9(self) -> dict[str, Any]:
        before = self.show("MainPID", "NRestarts")
        os.kill(int(before["MainPID"]), signal.SIGKILL)

        def restarted() -> dict[str, str]:
            props = self.show("MainPID", "NRestarts", "ActiveState", "SubState", "StatusText")
            again = (
                int(props["NRestarts"]) == int(before["NRestarts"]) + 1
                and props["ActiveState"] == "active"
                and props["SubState"] == "running"
                and props["MainPID"] not in ("0", before["MainPID"])
            )
            return props if again else {}

        after: dict[str, str] = self.wait_for("a restart after kill -9", restarted, timeout=30)

        def settled() -> str:
            # The session written before the kill is still valid: no new code is needed.
            text = self.status_text()
            return text if "fresh" in text and "awaiting code" not in text else ""

        after["StatusText"] = self.wait_for("fresh profiles after the restart", settled)
        return {"before": before, "after": after}

    def stop(self) -> dict[str, Any]:
        started = time.monotonic()
        result = self.systemctl("stop", UNIT, timeout=30)
        seconds = round(time.monotonic() - started, 2)
        props = self.show("ActiveState", "Result")
        if result.returncode != 0 or props["ActiveState"] != "inactive":
            raise StepFailed(f"stop failed ({result.stderr.strip()}): {props}")
        # "exited 0": credd exited by itself, neither killed by SIGTERM nor by SIGKILL.
        ended = self.stop_result.read_text().strip()
        if props["Result"] != "success" or ended != "success exited 0":
            raise StepFailed(f"did not stop cleanly: {props}, ExecStopPost saw {ended!r}")
        if seconds >= 10:
            raise StepFailed(f"stop took {seconds}s, TimeoutStopSec is 10")
        if os.path.lexists(self.socket):
            raise StepFailed(f"{self.socket} is left behind")
        return {"seconds": seconds, "ended": ended, **props}

    def invalid_policy(self) -> dict[str, Any]:
        self.policy.write_text(INVALID_POLICY)
        result = self.systemctl("start", UNIT, timeout=60)
        if result.returncode == 0:
            raise StepFailed("systemctl start succeeded on an invalid policy")
        props = ("ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts")
        first = self.show(*props)
        expected = {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2"}
        if {k: first[k] for k in expected} != expected:
            raise StepFailed(f"expected {expected}, got {first}")
        # Several RestartSec later, still failed and never restarted.
        time.sleep(RESTART_SEC * 3 + 0.5)
        later = self.show(*props)
        if later != first:
            raise StepFailed(f"the unit moved on after failing: {first} -> {later}")
        return later

    def close(self) -> None:
        self.systemctl("stop", UNIT, timeout=30)
        if self.keyring is not None:
            self.systemctl("unset-environment", "DBUS_SESSION_BUS_ADDRESS")
            self.keyring_context.__exit__(None, None, None)

    # -- the source key in the keyring ------------------------------------------------

    keyring: Any = None
    keyring_context: Any = None

    def start_secret_service(self) -> str:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from secret_service import secret_service  # the venv's jeepney: --keyring only

        self.keyring_context = secret_service(self.home / "secret-service")
        self.keyring = self.keyring_context.__enter__()
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self.keyring.address
        return str(self.keyring.address)

    def import_keys(self) -> dict[str, Any]:
        result = self.run(str(self.bin_dir / "credd"), "keys", "import", "default")
        if result.returncode != 0:
            raise StepFailed(f"credd keys import exited {result.returncode}: {result.stderr}")
        text = self.credentials.read_text()
        if LONG_TERM_SECRET in text or "aws_access_key_id" in text:
            raise StepFailed(f"the key is still in {self.credentials}")
        held = self.keyring.secrets()
        if "default" not in held or LONG_TERM_SECRET not in held["default"]:
            raise StepFailed(f"the keyring holds no key for default: {sorted(held)}")
        return {"credd": result.stdout.strip(), "keyring items": sorted(held)}

    def bus_for_the_manager(self) -> str:
        address = self.env["DBUS_SESSION_BUS_ADDRESS"]
        result = self.systemctl("set-environment", f"DBUS_SESSION_BUS_ADDRESS={address}")
        if result.returncode != 0:
            raise StepFailed(f"systemctl set-environment failed: {result.stderr}")
        shown = self.systemctl("show-environment").stdout
        if f"DBUS_SESSION_BUS_ADDRESS={address}" not in shown:
            raise StepFailed(f"the manager's environment lacks the bus: {shown}")
        return address

    def renewed_from_the_keyring(self) -> dict[str, Any]:
        status = self.status_json()
        (profile,) = [p for p in status["profiles"] if p["name"] == SESSION]
        if profile["state"] != "fresh":
            raise StepFailed(f"{SESSION} is not fresh: {profile}")
        check = self.run(str(self.bin_dir / "credd"), "check")
        if "keys in the keyring: default" not in check.stdout:
            raise StepFailed(f"credd check does not find the key in the keyring: {check.stdout}")
        for name, text in (
            ("the credentials file", self.credentials.read_text()),
            ("credd's log", self.log.read_text(errors="replace")),
            ("credctl status", self.credctl("status").stdout),
        ):
            if LONG_TERM_SECRET in text:
                raise StepFailed(f"the long-term secret is in {name}")
        return {"state": profile["state"], "expires_at": profile["expires_at"]}


Steps = list[tuple[str, Callable[[], Any]]]


def run_scenario(argv: list[str] | None, steps_for: Callable[[Scenario], Steps]) -> int:
    """Run the steps `steps_for` gives, in order, until one fails; print the JSON report."""
    parser = argparse.ArgumentParser(description="a credd scenario beside systemd --user")
    parser.add_argument("--bin-dir", type=Path, required=True, help="bin/ of credd's venv")
    parser.add_argument(
        "--home", type=Path, required=True, help="the manager's HOME (its files are replaced)"
    )
    parser.add_argument("--sts-url", required=True, help="a local STS: http://127.0.0.1:PORT")
    parser.add_argument(
        "--keyring", action="store_true", help="the source key in a Secret Service (module doc)"
    )
    args = parser.parse_args(argv)
    if args.keyring:
        steps_for = keyring_steps
    if not os.environ.get("XDG_RUNTIME_DIR"):
        print("XDG_RUNTIME_DIR (the manager's) is unset", file=sys.stderr)
        return 1
    scenario = Scenario(args.bin_dir.absolute(), args.home.absolute(), args.sts_url)
    steps = steps_for(scenario)
    try:
        for name, action in steps:
            if not scenario.step(name, action):
                break
    finally:
        scenario.close()
    ok = len(scenario.steps) == len(steps) and all(s["ok"] for s in scenario.steps)
    print(json.dumps({"ok": ok, "steps": scenario.steps}, indent=2, default=str))
    return 0 if ok else 1


def service_steps(scenario: Scenario) -> Steps:
    """The whole life of the unit: install, start, codes, watchdog, reload, crash, stop."""
    return [
        ("sandbox HOME, policy and AWS files", scenario.write_sandbox),
        ("credd install systemd + test drop-in", scenario.install_unit),
        ("daemon-reload; unit loads; systemctl cat", scenario.daemon_reload),
        ("systemctl start returns after READY=1", scenario.start),
        ("socket 0600 in a 0700 directory", scenario.socket_is_private),
        ("StatusText: awaiting code: <profile>", scenario.awaiting_code),
        ("credctl token renews; StatusText changes", scenario.feed_token),
        ("WatchdogTimestamp advances", scenario.watchdog),
        ("systemctl reload re-reads the policy", scenario.reload),
        ("kill -9 of MainPID restarts it", scenario.kill_9),
        ("systemctl stop ends cleanly, socket removed", scenario.stop),
        ("invalid policy: failed, exit 2, no restart loop", scenario.invalid_policy),
    ]


def keyring_steps(scenario: Scenario) -> Steps:
    """Once more with the source key in the keyring: the unit reaches it on the user's bus."""
    return [
        ("sandbox HOME, policy and AWS files", scenario.write_sandbox),
        ("a Secret Service on a session bus", scenario.start_secret_service),
        ("credd keys import default: out of the file", scenario.import_keys),
        ("the bus in the manager's environment", scenario.bus_for_the_manager),
        ("credd install systemd + test drop-in", scenario.install_unit),
        ("daemon-reload; unit loads; systemctl cat", scenario.daemon_reload),
        ("systemctl start returns after READY=1", scenario.start),
        ("StatusText: awaiting code: <profile>", scenario.awaiting_code),
        ("credctl token renews from the keyring", scenario.feed_token),
        ("fresh; no long-term secret in file, log or status", scenario.renewed_from_the_keyring),
        ("kill -9 of MainPID restarts it", scenario.kill_9),
        ("systemctl stop ends cleanly, socket removed", scenario.stop),
    ]


if __name__ == "__main__":
    sys.exit(run_scenario(None, service_steps))
