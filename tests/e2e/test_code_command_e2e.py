"""`code_command` and `notify` end to end: the real `credd run` against the fake STS.

A code command that prints the device's current code renews the session with
no credctl at all; one that fails leaves the profile awaiting a code, which
`credctl token` still feeds. The code commands are small Python scripts run
with this interpreter (pyotp computes the code the fake STS expects).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest
from support.daemon import MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts

pytestmark = pytest.mark.slow

PY = sys.executable


def policy(code_command: list[str] | None = None, notify: list[str] | None = None) -> str:
    """session-alice with a chained role, plus the commands given (JSON lists are YAML)."""
    extra = ""
    if code_command is not None:
        extra += f"    code_command: {json.dumps(code_command)}\n"
    if notify is not None:
        extra += f"    notify: {json.dumps(notify)}\n"
    return (
        "version: 1\n"
        "defaults:\n"
        "  region: us-east-1\n"
        "profiles:\n"
        "  session-alice:\n"
        "    source_profile: default\n"
        f"    mfa_serial: {MFA_SERIAL}\n"
        f"{extra}"
        "  prod-admin:\n"
        "    source_profile: session-alice\n"
        "    role_arn: arn:aws:iam::123456789012:role/Admin\n"
    )


@pytest.fixture
def make_box(tmp_path: Path, otp_sts: FakeSts) -> Iterator[Callable[[str], Sandbox]]:
    """Sandboxes with a given policy, pointed at the fake STS; their daemons ended after."""
    boxes: list[Sandbox] = []

    def make(text: str) -> Sandbox:
        box = Sandbox(tmp_path, otp_sts.url, policy_text=text)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()


def test_a_code_command_renews_the_session_with_no_credctl(
    make_box: Callable[[str], Sandbox], otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """The code command prints the device's code: the session and its chained role become
    fresh with no `credctl token`; the code is in no log line."""
    script = f"import pyotp; print(pyotp.TOTP({totp.secret!r}).now())"
    box = make_box(policy(code_command=[PY, "-c", script]))
    box.start()
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh"})
    [call] = otp_sts.calls_for("GetSessionToken")
    assert call.serial == MFA_SERIAL
    assert call.code is not None
    assert call.outcome == "ok"
    log = box.log_text()
    assert "code from code command" in log
    assert call.code not in log


def test_a_failing_code_command_falls_back_to_the_socket(
    make_box: Callable[[str], Sandbox], otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """A code command that prints something else and fails: the profile stays awaiting a
    code (status --json says so), the warning names it, and `credctl token` renews it."""
    secret_ish = "CANARYnotACode"
    script = f"import sys; print({secret_ish!r}); sys.exit(1)"
    box = make_box(policy(code_command=[PY, "-c", script]))
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})
    _wait_for_log(box, "gave no code")
    assert box.states()["session-alice"] == "awaiting-code"
    assert otp_sts.calls_for("GetSessionToken") == []

    done = box.ctl("token", totp.now())
    assert done.returncode == 0, done.stderr
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh"})
    log = box.log_text()
    assert "session-alice: code command python" in log
    assert "exited with status 1" in log
    assert secret_ish not in log


def test_a_code_aws_refuses_leaves_the_profile_awaiting_a_code(
    make_box: Callable[[str], Sandbox], otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """The code command's code is refused by AWS: not resent, the profile keeps waiting with
    AWS's reason, and a code fed over the socket renews it."""
    otp_sts.fail_next("GetSessionToken", "reject_code")
    script = f"import pyotp; print(pyotp.TOTP({totp.secret!r}).now())"
    box = make_box(policy(code_command=[PY, "-c", script]))
    box.start()
    _wait_for_log(box, "code command's code was not used")
    status = box.status()
    [session] = [p for p in status["profiles"] if p["name"] == "session-alice"]
    assert session["state"] == "awaiting-code"
    assert "refused the MFA code" in session["last_error"]
    assert len(otp_sts.calls_for("GetSessionToken")) == 1

    fed = f"{(int(totp.now()) + 1) % 1_000_000:06d}"  # not the refused code: a new one
    otp_sts.code_validator = lambda serial, code: code == fed
    done = box.ctl("token", fed, "--profile", "session-alice")
    assert done.returncode == 0, done.stderr
    box.wait_states({"session-alice": "fresh"})


def test_notify_runs_with_the_profile_device_and_message(
    make_box: Callable[[str], Sandbox], tmp_path: Path
) -> None:
    """The notify command gets `{profile}`, `{mfa_serial}` and `{message}` filled in when a
    code is needed, and the profile still waits for one over the socket."""
    record = tmp_path / "notified.json"
    script = (
        "import json, os, pathlib, sys; "
        f"p = pathlib.Path({str(record)!r}); t = p.with_suffix('.tmp'); "
        "t.write_text(json.dumps(sys.argv[1:])); os.replace(t, p)"
    )
    argv = [PY, "-c", script, "{profile}", "{mfa_serial}", "{message}"]
    box = make_box(policy(notify=argv))
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})
    _wait_for(record.exists, f"notify never ran:\n{box.log_text()}")
    profile, serial, message = json.loads(record.read_text())
    assert (profile, serial) == ("session-alice", MFA_SERIAL)
    assert "session-alice" in message
    assert MFA_SERIAL in message
    assert box.states()["session-alice"] == "awaiting-code"


def _wait_for(condition: Callable[[], bool], failure: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.05)


def _wait_for_log(box: Sandbox, text: str) -> None:
    _wait_for(lambda: text in box.log_text(), f"never logged {text!r}:\n{box.log_text()}")
