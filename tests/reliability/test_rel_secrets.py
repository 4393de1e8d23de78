"""Secrets never show: a debug-level run fed canary secrets, tokens, codes and an ExternalId."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from relsupport import (
    ACCOUNT,
    CANARY_CODES,
    WATCH,
    Box,
    LeakWatch,
    RecordingSts,
    session_policy,
    wait_until,
)
from support.daemon import CREDD, LONG_TERM_SECRET, MFA_SERIAL

RIGHT, WRONG, FAILED = CANARY_CODES[4], CANARY_CODES[5], CANARY_CODES[0]
# A role's ExternalId: never logged or shown, even when AWS's error text quotes it back.
EXTERNAL_ID = "CanaryExternalId-3e9d41b7"
PARTNER_ROLE = (
    "  partner-role:\n    source_profile: default\n"
    f"    role_arn: arn:aws:iam::{ACCOUNT}:role/Partner\n    external_id: {EXTERNAL_ID}\n"
)


@pytest.mark.slow
@pytest.mark.case(
    "Secrets",
    "canary secrets, tokens, codes and an ExternalId with --log-level debug, across every scenario",
    "no canary in any log line, error, status output, traceback (credctl --debug) or "
    "`credd login` output; checked again over the whole suite at its end",
)
def test_no_canary_in_any_output(make_box: Callable[..., Box], sts: RecordingSts) -> None:
    """A debug-level daemon with a canary long-term secret: right, wrong and malformed
    canary codes, a code whose call failed, a rejected `credd login --token-code`,
    `credctl --debug` tracebacks, and a role whose canary ExternalId AWS quotes back in
    its refusal. Nothing it logs or prints holds a canary, a session secret or a token
    STS issued; the same check, run on the credentials file, does find them (so the
    check itself works)."""
    sts.code_validator = lambda _serial, code: code == RIGHT
    sts.fail_next("AssumeRole", "validation_error")
    box = make_box(policy_text=session_policy() + PARTNER_ROLE)
    box.start()
    refused = wait_until(
        "the partner role's refusal",
        lambda: box.status_of("partner-role").get("last_error") or "",
    )
    assert "Value '****' at 'externalId'" in refused, refused
    outputs: list[subprocess.CompletedProcess[str]] = [
        box.ctl("status"),
        box.ctl("status", "--json"),
        box.ctl("token", WRONG),
        box.ctl("--debug", "token", WRONG + "0"),
        box.ctl("--debug", "token", "x" + RIGHT),
        box.ctl("token", input=f"{RIGHT[:5]}\n"),
    ]
    sts.fail_next("GetSessionToken", "http500")
    outputs.append(box.ctl("token", FAILED))
    outputs.append(box.ctl("token", RIGHT))
    outputs.append(box.ctl("status"))
    outputs.append(box.ctl("status", "--json"))
    outputs.append(box.ctl("refresh", "session-alice"))
    # --debug re-raises: a traceback and exit 1 instead of one line and exit 2.
    assert [o.returncode for o in outputs] == [0, 0, 1, 1, 1, 2, 1, 0, 0, 0, 0]
    assert "Traceback" in outputs[3].stderr
    login = subprocess.run(
        [
            CREDD,
            "login",
            "--profile",
            "default",
            "--update-profile",
            "login-test",
            "--serial-number",
            MFA_SERIAL,
            "--token-code",
            WRONG,
        ],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert login.returncode != 0
    WATCH.text("credd login", login.stdout + login.stderr)
    box.stop()
    WATCH.secret(*sts.issued_secrets, EXTERNAL_ID)
    WATCH.text("credd log (secrets test)", box.log_text())
    assert "DEBUG" in box.log_text(), "the daemon really ran at debug level"

    mine = LeakWatch()
    mine.secret(*sts.issued_secrets, LONG_TERM_SECRET, RIGHT, WRONG, FAILED, EXTERNAL_ID)
    for i, done in enumerate(outputs):
        mine.text(f"credctl call {i}", done.stdout + done.stderr)
    mine.text("credd login", login.stdout + login.stderr)
    mine.text("daemon log", box.log_text())
    assert not mine.leaks(), mine.leaks()
    mine.text("the credentials file itself", box.credentials.read_text())
    assert mine.leaks(), "the leak check finds secrets where they are"
