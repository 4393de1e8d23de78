"""credd as a real systemd user service: the unit, sd_notify, watchdog, reload, restarts, stop.

The scenario itself (tests/support/systemd_scenario.py) runs beside a private
`systemd --user` manager that the tests start themselves
(tests/support/systemd_user.py), twice:

- as root, with credd from the development venv (editable);
- as an unprivileged user (E2E_USER, made if absent), as on a desktop: the
  manager, the unit, `credd install systemd` and credctl all run as that
  user, with credd installed by pip, not editable, in a venv made from
  Debian's /usr/bin/python3 (support/user_venv.py; cached between runs).

Where no manager can be had (not root, no unshare, no systemd) or no venv can
be made (no python3-venv), the test is skipped with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.systemd_user import (
    IN_NAMESPACE,
    ROOT,
    Account,
    Unavailable,
    UserManager,
    ensure_account,
    systemd_user_manager,
    unavailable_reason,
)
from support.user_venv import NoSystemPython, installed_venv

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "support" / "systemd_scenario.py"
SECRET_SERVICE = REPO / "tests" / "support" / "secret_service.py"
E2E_USER = "credd-e2e"

pytestmark = [pytest.mark.systemd, pytest.mark.slow]


@pytest.fixture(params=["root", "unprivileged"])
def desktop(request: pytest.FixtureRequest) -> Iterator[tuple[UserManager, Path]]:
    """A manager, and the bin/ of the credd its user runs; skipped where none can be had."""
    account: Account = ROOT
    bin_dir = Path(sys.executable).parent
    try:
        if request.param == "unprivileged":
            account = ensure_account(E2E_USER)
            bin_dir = installed_venv(REPO)
        with systemd_user_manager(account) as manager:
            yield manager, bin_dir
    except (Unavailable, NoSystemPython) as exc:
        pytest.skip(f"no systemd --user manager for {request.param} here: {exc}")


def describe(report: dict[str, Any]) -> str:
    """The report as a person reads it: one line per step, diagnostics of the failed one."""
    lines = []
    for step in report["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        lines.append(f"{mark} {step['step']} ({step['seconds']}s): {step['detail']}")
        for title, text in step.get("diagnostics", {}).items():
            lines.append(f"---- {title}\n{text}")
    return "\n".join(lines)


@pytest.mark.timeout(600)
def test_credd_under_a_real_systemd_user_manager(
    desktop: tuple[UserManager, Path], moto_sts_url: str
) -> None:
    """`credd install systemd`, then the unit behaves as SPEC.md's "systemd" section says.

    start returns after READY=1 with a STATUS naming the profile awaiting a
    code; `credctl token` changes it; the watchdog is fed; reload re-reads the
    policy; kill -9 is restarted; stop is clean and removes the socket; an
    invalid policy fails the unit with status 2 and no restart loop. credd
    runs as the manager's user.
    """
    manager, bin_dir = desktop
    scripts = manager.readable_copy(SCENARIO)
    result = manager.run(
        str(bin_dir / "python"),
        str(scripts / SCENARIO.name),
        "--bin-dir",
        str(bin_dir),
        "--home",
        str(manager.home),
        "--sts-url",
        moto_sts_url,
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
    started = next(s for s in report["steps"] if s["step"].startswith("systemctl start"))
    assert started["detail"]["uid"] == manager.account.uid


@pytest.mark.timeout(600)
def test_credd_under_systemd_with_the_source_key_in_the_keyring(
    desktop: tuple[UserManager, Path], moto_sts_url: str
) -> None:
    """The same unit with the source key moved into a real Secret Service: the bus is in
    the manager's environment (as a desktop session puts it there), the unit renews the
    session from the keyring, restarts after kill -9, and no long-term secret is left in
    the file, the log or the status."""
    manager, bin_dir = desktop
    scripts = manager.readable_copy(SCENARIO, SECRET_SERVICE)
    result = manager.run(
        str(bin_dir / "python"),
        str(scripts / SCENARIO.name),
        "--bin-dir",
        str(bin_dir),
        "--home",
        str(manager.home),
        "--sts-url",
        moto_sts_url,
        "--keyring",
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
    assert [s["step"] for s in report["steps"]][2] == "credd keys import default: out of the file"


def test_the_harness_refuses_a_manager_outside_a_cgroup_of_its_own() -> None:
    """The shell that starts the manager checks /proc/self/cgroup before it execs it: not
    moved into the cgroup it was given, it refuses, and the manager never runs."""
    if (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_NAMESPACE, "sh"]
    result = subprocess.run(
        # No cgroup.procs to join (""): the shell stays in the cgroup pytest is in.
        [*unshare, "", "credd-sdu-never-made", "echo", "the manager would start"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "not in cgroup /credd-sdu-never-made, refusing to start" in result.stderr
    assert "would start" not in result.stdout


def test_the_harness_leaves_nothing_behind() -> None:
    """After the `with`: the manager has exited, its cgroups and its directory are gone."""
    try:
        with systemd_user_manager() as manager:
            assert manager.systemctl("is-system-running").stdout.strip() == "running"
            assert manager.cgroups and all(c.is_dir() for c in manager.cgroups)
            held = (manager.process, manager.workdir, manager.cgroups)
    except Unavailable as exc:
        pytest.skip(f"no systemd --user manager here: {exc}")
    process, workdir, cgroups = held
    assert process.poll() is not None
    assert not workdir.exists()
    assert not any(c.exists() for c in cgroups)
