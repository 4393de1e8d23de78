"""`credd login` beside a running credd: the real commands, the fault-injecting STS.

Into a profile the daemon manages, login hands the code to it (as `credctl token
--profile` would) instead of writing behind its back, so the file and the daemon
agree on the expiry and the chained roles follow; a device or source that
contradicts the policy is refused before the code is used. Into a profile the
daemon does not manage, login writes by itself.
"""

from __future__ import annotations

import configparser
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import CREDD, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts

pytestmark = pytest.mark.slow


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A running credd whose policy manages session-alice (and two roles on it); the AWS
    config names alice's device, as `aws configure mfa-login` users have it."""
    sandbox = Sandbox(tmp_path, fake_sts.url)
    (sandbox.home / ".aws" / "config").write_text(
        f"[default]\nmfa_serial = {MFA_SERIAL}\nregion = us-east-1\n"
    )
    sandbox.start()
    sandbox.wait_states({"session-alice": "awaiting-code"})
    yield sandbox
    sandbox.close()


def login(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `credd login` in the sandbox, stdin empty (not a terminal)."""
    return subprocess.run(
        [CREDD, "login", *args], env=box.env, input="", capture_output=True, text=True, timeout=60
    )


def expiry_on_disk(box: Sandbox, name: str) -> str:
    parser = configparser.RawConfigParser()
    parser.read(box.credentials)
    return parser[name]["x_security_token_expires"]


def test_login_hands_the_code_to_the_daemon_that_manages_the_profile(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """The default target session-alice is the daemon's: the code goes to it (one
    GetSessionToken, signed by the daemon), the daemon and the file agree on the expiry,
    the roles are renewed after it, and login says what happened."""
    done = login(box, "--token-code", "123456", "--duration-seconds", "3600")
    assert done.returncode == 0, done.stderr
    pid = box.status()["daemon"]["pid"]
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"session-alice is managed by the running credd (pid {pid}): the code goes to it,"
        " and it renews session-alice as its policy says (its duration, not"
        " --duration-seconds)"
    )
    assert lines[1].startswith("session-alice renewed by credd; expires ")
    [call] = fake_sts.calls_for("GetSessionToken")
    assert (call.code, call.duration) == ("123456", 12 * 3600)
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh", "prod-ro": "fresh"})
    status = {p["name"]: p for p in box.status()["profiles"]}
    assert status["session-alice"]["expires_at"] == expiry_on_disk(box, "session-alice")
    assert status["session-alice"]["expires_at"] in lines[1]


def test_login_finds_the_daemon_by_socket_after_the_command(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """`credd login --socket S` (a common option, after the command) with no CREDD_SOCKET:
    the daemon there gets the code; without either, login would not find it."""
    env = {k: v for k, v in box.env.items() if k != "CREDD_SOCKET"}
    done = subprocess.run(
        [CREDD, "login", "--token-code", "123456", "--socket", str(box.socket)],
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "is managed by the running credd" in done.stdout
    assert len(fake_sts.calls_for("GetSessionToken")) == 1
    box.wait_states({"session-alice": "fresh"})


def test_a_device_or_source_that_contradicts_the_policy_is_refused_before_the_code(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """--serial-number of another device, or --profile of another source, for the managed
    session-alice: exit 2 saying what the daemon uses; no code reaches AWS, nothing written."""
    before = box.credentials.read_bytes()
    other = "arn:aws:iam::123456789012:mfa/bob"
    done = login(
        box, "--token-code", "123456", "--serial-number", other, "--update-profile", "session-alice"
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"credd: error: credd (pid {box.status()['daemon']['pid']}) manages session-alice"
        f" with the MFA device {MFA_SERIAL}, not {other}: a code from another device would be"
        " refused; leave out --serial-number\n"
    )
    done = login(
        box, "--token-code", "123456", "--profile", "unrelated", "--update-profile", "session-alice"
    )
    assert done.returncode == 2
    assert "from source profile default, not unrelated" in done.stderr
    assert fake_sts.calls_for("GetSessionToken") == []
    assert box.credentials.read_bytes() == before
    assert box.states()["session-alice"] == "awaiting-code"


def test_a_code_the_daemon_gets_refused_exits_1_and_the_profile_keeps_waiting(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """AWS refuses the handed-over code: exit 1 with AWS's reason; still awaiting a code."""
    fake_sts.fail_next("GetSessionToken", "reject_code")
    done = login(box, "--token-code", "975310")
    assert done.returncode == 1
    assert done.stderr.startswith("credd: error: ")
    assert "refused the MFA code" in done.stderr
    assert "975310" not in done.stderr + done.stdout
    assert box.states()["session-alice"] == "awaiting-code"


def test_a_profile_the_daemon_does_not_manage_is_written_by_login_itself(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """--update-profile elsewhere: login renews and writes it alone, as with no daemon; the
    daemon's own profile is untouched and still waiting."""
    done = login(box, "--token-code", "123456", "--update-profile", "adhoc")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote adhoc (key ****")
    assert expiry_on_disk(box, "adhoc").endswith("Z")
    assert box.states()["session-alice"] == "awaiting-code"
