"""credd as a real systemd user service: the unit, sd_notify, watchdog, reload, restarts, stop.

The scenario itself (tests/support/systemd_scenario.py) runs beside a private
`systemd --user` manager started by the shared tool `with-systemd-user`,
found at ../shared/tools/ next to the repository (CI copies shared/ beside
the clone). Where the tool is missing or says no manager can be had here
(exit 77: not root, no unshare, no systemd), the test is skipped with its
reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
WITH_SYSTEMD_USER = REPO.parent / "shared" / "tools" / "with-systemd-user"
SCENARIO = REPO / "tests" / "support" / "systemd_scenario.py"
NO_MANAGER_HERE = 77

pytestmark = [pytest.mark.systemd, pytest.mark.slow]


def run_beside_systemd_user(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `argv` under with-systemd-user, or skip the test saying why it cannot be."""
    if not WITH_SYSTEMD_USER.is_file():
        pytest.skip(f"no {WITH_SYSTEMD_USER}: cannot start a systemd --user manager")
    result = subprocess.run(
        [str(WITH_SYSTEMD_USER), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode == NO_MANAGER_HERE:
        reason = result.stderr.strip().splitlines()[:1] or ["(no reason given)"]
        pytest.skip(f"with-systemd-user: no systemd --user manager here: {reason[0]}")
    return result


def describe(report: dict[str, Any]) -> str:
    """The report as a person reads it: one line per step, diagnostics of the failed one."""
    lines = []
    for step in report["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        lines.append(f"{mark} {step['step']} ({step['seconds']}s): {step['detail']}")
        for title, text in step.get("diagnostics", {}).items():
            lines.append(f"---- {title}\n{text}")
    return "\n".join(lines)


@pytest.mark.timeout(300)
def test_credd_under_a_real_systemd_user_manager() -> None:
    """`credd install systemd`, then the unit behaves as SPEC.md's "systemd" section says.

    start returns after READY=1 with a STATUS naming the profile awaiting a
    code; `credctl token` changes it; the watchdog is fed; reload re-reads the
    policy; kill -9 is restarted; stop is clean and removes the socket; an
    invalid policy fails the unit with status 2 and no restart loop.
    """
    result = run_beside_systemd_user(
        sys.executable,
        str(SCENARIO),
        "--bin-dir",
        str(Path(sys.executable).parent),
        timeout=280,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"the scenario printed no report (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    assert report["ok"], describe(report)
    assert result.returncode == 0, result.stderr
