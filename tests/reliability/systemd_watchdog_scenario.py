"""credd under a real `systemd --user` manager: SIGSTOP the daemon, the watchdog restarts it.

test_rel_systemd.py runs it beside a private manager (support/systemd_user.py),
in the manager's mount namespace, with the arguments of
tests/support/systemd_scenario.py (--bin-dir, --home, --sts-url), which it
reads from the same directory. It reuses that scenario's steps (sandbox,
`credd install systemd` with a drop-in setting WatchdogSec=4 and RestartSec=1)
and adds one: the main process is stopped with SIGSTOP, so its event loop
cannot ping; systemd must kill it and start a new one. Prints a JSON report;
exit 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

# Beside this file when copied for a run; in tests/support/ in the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from systemd_scenario import RESTART_SEC, WATCHDOG_SEC, Scenario, StepFailed, Steps, run_scenario

# systemd sends WatchdogSignal (SIGABRT), then SIGKILL after TimeoutAbortSec (the unit's
# TimeoutStopSec, 10 s); then RestartSec. Generous on top for a loaded machine.
RESTART_DEADLINE = WATCHDOG_SEC + 10 + RESTART_SEC + 20


def sigstop(scenario: Scenario) -> dict[str, Any]:
    """SIGSTOP the main process; wait for the watchdog to replace it."""
    before = scenario.show("MainPID", "NRestarts")
    stopped = int(before["MainPID"])
    os.kill(stopped, signal.SIGSTOP)

    def restarted() -> dict[str, str]:
        props = scenario.show("MainPID", "NRestarts", "ActiveState", "SubState")
        again = (
            int(props["NRestarts"]) == int(before["NRestarts"]) + 1
            and props["ActiveState"] == "active"
            and props["SubState"] == "running"
            and props["MainPID"] not in ("0", before["MainPID"])
        )
        return props if again else {}

    after: dict[str, str] = scenario.wait_for(
        "the watchdog to restart the stopped daemon", restarted, timeout=RESTART_DEADLINE
    )
    try:
        os.kill(stopped, 0)
    except ProcessLookupError:
        pass
    else:
        raise StepFailed(f"the stopped process {stopped} is still there")
    states = scenario.wait_for(
        "the new daemon to answer credctl",
        lambda: {p["name"]: p["state"] for p in scenario.status_json()["profiles"]},
    )
    if scenario.status_json()["daemon"]["pid"] != int(after["MainPID"]):
        raise StepFailed("credctl is answered by another process than MainPID")
    return {"before": before, "after": after, "states": states}


def watchdog_steps(scenario: Scenario) -> Steps:
    """Start the unit, freeze the daemon, and see the watchdog replace it."""
    return [
        ("sandbox HOME, policy and AWS files", scenario.write_sandbox),
        ("credd install systemd + test drop-in", scenario.install_unit),
        ("daemon-reload; unit loads; systemctl cat", scenario.daemon_reload),
        ("systemctl start returns after READY=1", scenario.start),
        ("SIGSTOP of MainPID: the watchdog restarts it", lambda: sigstop(scenario)),
        ("systemctl stop ends cleanly, socket removed", scenario.stop),
    ]


if __name__ == "__main__":
    sys.exit(run_scenario(None, watchdog_steps))
