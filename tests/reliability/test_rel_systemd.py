"""SIGSTOP of credd under a real systemd user manager: the watchdog kills and restarts it.

The manager is the tests' own (tests/support/systemd_user.py), run as root;
the scenario is systemd_watchdog_scenario.py beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from relsupport import WATCH
from support.systemd_user import Unavailable, systemd_user_manager

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIO = Path(__file__).with_name("systemd_watchdog_scenario.py")
STEPS = REPO / "tests" / "support" / "systemd_scenario.py"


@pytest.mark.systemd
@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.case(
    "Socket and process",
    "SIGSTOP of the daemon under systemd (WatchdogSec=4)",
    "the watchdog fires: systemd kills it and starts a new one (NRestarts+1, new MainPID) "
    "that answers credctl",
)
def test_a_stopped_daemon_is_restarted_by_the_watchdog(moto_sts_url: str) -> None:
    """The event loop of a SIGSTOPped credd cannot send WATCHDOG=1: within WatchdogSec plus
    the abort timeout systemd kills it, restarts it (Restart=on-failure), and the new
    MainPID answers `credctl status`; a clean stop follows."""
    bin_dir = Path(sys.executable).parent
    try:
        with systemd_user_manager() as manager:
            scripts = manager.readable_copy(SCENARIO, STEPS)
            result = manager.run(
                str(bin_dir / "python"),
                str(scripts / SCENARIO.name),
                "--bin-dir",
                str(bin_dir),
                "--home",
                str(manager.home),
                "--sts-url",
                moto_sts_url,
                timeout=180,
            )
    except Unavailable as exc:
        pytest.skip(f"no systemd --user manager here: {exc}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    WATCH.text("systemd watchdog scenario", result.stdout + result.stderr)
    failed = [s for s in report["steps"] if not s["ok"]]
    assert report["ok"], json.dumps(failed or report, indent=2)
    assert result.returncode == 0
