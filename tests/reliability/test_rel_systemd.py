"""SIGSTOP of credd under a real systemd user manager: the watchdog kills and restarts it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from relsupport import WATCH

REPO = Path(__file__).resolve().parent.parent.parent
WITH_SYSTEMD_USER = REPO.parent / "shared" / "tools" / "with-systemd-user"
SCENARIO = Path(__file__).with_name("systemd_watchdog_scenario.py")
NO_MANAGER_HERE = 77


@pytest.mark.systemd
@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.case(
    "Socket and process",
    "SIGSTOP of the daemon under systemd (WatchdogSec=4)",
    "the watchdog fires: systemd kills it and starts a new one (NRestarts+1, new MainPID) "
    "that answers credctl",
)
def test_a_stopped_daemon_is_restarted_by_the_watchdog() -> None:
    """The event loop of a SIGSTOPped credd cannot send WATCHDOG=1: within WatchdogSec plus
    the abort timeout systemd kills it, restarts it (Restart=on-failure), and the new
    MainPID answers `credctl status`; a clean stop follows."""
    if not WITH_SYSTEMD_USER.is_file():
        pytest.skip(f"no {WITH_SYSTEMD_USER}: cannot start a systemd --user manager")
    result = subprocess.run(
        [
            str(WITH_SYSTEMD_USER),
            sys.executable,
            str(SCENARIO),
            "--bin-dir",
            str(Path(sys.executable).parent),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode == NO_MANAGER_HERE:
        reason = (result.stderr.strip().splitlines() or ["(no reason given)"])[0]
        pytest.skip(f"with-systemd-user: no systemd --user manager here: {reason}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    WATCH.text("systemd watchdog scenario", result.stdout + result.stderr)
    failed = [s for s in report["steps"] if not s["ok"]]
    assert report["ok"], json.dumps(failed or report, indent=2)
    assert result.returncode == 0
