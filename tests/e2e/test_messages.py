"""What people read (issue 12, item 6), from the real commands: reload's problems one a
line with the old policy kept, every problem at once, a valid policy said so, roles never
obtained shown as pending, `credctl token` naming its profile on a terminal, the same
quoting of names everywhere, and no botocore chatter in the log."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import CREDCTL, CREDD, MFA_SERIAL, POLICY_TEXT, Sandbox
from support.fake_sts import FakeSts
from support.terminal import Terminal

pytestmark = pytest.mark.slow

# A profile that is its own source, plus problems the structural one used to hide.
BROKEN = f"""version: 1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
    duration: 40h
  loop:
    source_profile: loop
    role_arn: arn:aws:iam::123456789012:role/A
    duration: 99h
    refresh_before: 100h
"""


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A sandbox on the fault-injecting STS, logging at info as a service does."""
    sandbox = Sandbox(tmp_path, fake_sts.url, log_level="info")
    yield sandbox
    sandbox.close()


def credd(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CREDD, *args], env=box.env, capture_output=True, text=True, timeout=60)


EXPECTED_PROBLEMS = [
    "  profiles.session-alice.duration: 40h is out of range for an MFA session:"
    " GetSessionToken allows 15m to 36h",
    "  profiles.loop.source_profile: a profile cannot be its own source",
    "  profiles.loop.duration: 99h is out of range for a role: AssumeRole allows 15m to 12h",
]


def test_check_reports_every_problem_even_with_a_structural_error(box: Sandbox) -> None:
    """A profile that is its own source no longer hides its out-of-range duration, nor the
    other profile's: all three at once, exit 2."""
    box.policy.write_text(BROKEN)
    done = credd(box, "check")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{box.policy}: policy is invalid (3 problems)",
        *EXPECTED_PROBLEMS,
    ]


def test_check_says_a_valid_policy_is_valid(box: Sandbox) -> None:
    """The summary ends by saying the policy is valid (and how many warnings it has)."""
    done = credd(box, "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"\n{box.policy}: the policy is valid\n")
    box.policy.write_text(POLICY_TEXT.replace("duration: 30m", "duration: 2h"))
    done = credd(box, "check")
    assert done.stdout.endswith(f"\n{box.policy}: the policy is valid, with 1 warning above\n")


def test_reload_prints_each_problem_on_its_line_and_keeps_the_old_policy(box: Sandbox) -> None:
    """`credctl reload` of an invalid policy: exit 2, the head says the old policy stays in
    force, then one problem a line as `credd check` prints them; status is unchanged."""
    box.start()
    before = box.states()
    box.policy.write_text(BROKEN)
    done = box.ctl("reload")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"credctl: error: {box.policy}: policy is invalid (3 problems); the old policy stays"
        " in force",
        *EXPECTED_PROBLEMS,
    ]
    assert box.states() == before


def test_roles_never_obtained_are_pending_with_no_error(box: Sandbox) -> None:
    """Waiting for their source's first session, the roles are `pending` with no error
    (not `expired` with "waiting for ..."), and the table says whom they follow."""
    box.start()
    box.wait_states({"session-alice": "awaiting-code", "prod-admin": "pending"})
    profiles = {p["name"]: p for p in box.status()["profiles"]}
    for name in ("prod-admin", "prod-ro"):
        assert (profiles[name]["state"], profiles[name]["last_error"]) == ("pending", None)
    table = box.ctl("status").stdout
    row = next(line for line in table.splitlines() if line.startswith("prod-admin"))
    assert row.split() == ["prod-admin", "role", "pending", "-", "after", "session-alice", "-"]


def test_names_are_quoted_the_same_way_everywhere(box: Sandbox) -> None:
    """A profile name is written bare by credctl, the daemon and credd check alike."""
    box.start()
    done = box.ctl("token", "123456", "--profile", "ghost")
    assert (done.returncode, done.stderr) == (2, "credctl: error: no profile ghost in the policy\n")
    box.policy.write_text(POLICY_TEXT.replace("source_profile: default", "source_profile: ghost"))
    done = credd(box, "check")
    assert "profiles.session-alice.source_profile: ghost is neither in the policy" in done.stderr


def test_token_on_a_terminal_names_the_profile_it_will_renew(box: Sandbox) -> None:
    """`credctl token` with no code, on a terminal: the question names the profile, and
    that profile is renewed."""
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})
    term = Terminal([CREDCTL, "token"], box.env)
    try:
        term.expect("MFA code for session-alice: ")
        term.send("135790")
        term.expect("session-alice renewed; expires ")
        status = term.finish()
    except BaseException:
        term.kill()
        raise
    assert status == 0, term.text()
    assert "135790" not in term.text(), "the code is not echoed"


def test_the_log_has_no_botocore_endpoint_chatter(tmp_path: Path, fake_sts: FakeSts) -> None:
    """Every STS call used to log `INFO botocore.configprovider: Found endpoint for sts via
    ...`; at info and even at debug it is gone, and credd's own lines remain."""
    for level in ("info", "debug"):
        box = Sandbox(tmp_path / level, fake_sts.url, log_level=level)
        try:
            box.start()
            assert box.ctl("token", "123456" if level == "info" else "234567").returncode == 0
            box.wait_states({"prod-admin": "fresh"})
            box.stop()
            log = box.log_text()
        finally:
            box.close()
        assert "session-alice renewed" in log
        assert "Found endpoint" not in log
        assert "botocore.configprovider" not in log
