"""MFA codes and STS failures, end to end against the fault-injecting STS double."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from relsupport import CANARY_CODES, Box, RecordingSts, role_policy, session_policy, wait_until
from support.daemon import CREDENTIALS_TEXT
from support.fake_sts import hang

from credd.credentials import format_utc

RIGHT, WRONG, TRANSIENT, LATER = CANARY_CODES[:4]


def _sent(sts: RecordingSts, code: str) -> int:
    return sum(1 for call in sts.calls if call.code == code)


@pytest.mark.slow
@pytest.mark.case(
    "STS and codes",
    "wrong, reused, non-ASCII, 5- and 7-digit codes; a code whose call failed",
    "malformed: exit 2 and never sent; refused by AWS: exit 1, the profile keeps waiting; "
    "no code is ever sent twice by credd",
)
def test_codes_are_checked_and_never_resent(
    make_box: Callable[..., Box], sts: RecordingSts
) -> None:
    """Malformed codes (Arabic-Indic digits, fullwidth digits, 5 and 7 digits, a letter,
    a leading space) exit 2 without reaching STS and without being echoed; a wrong code exits 1
    and leaves `awaiting-code`; a reused code is refused by AWS (exit 1); a code whose
    call hit a 500 is not retried (exit 1, awaiting a fresh one). Each code reaches STS
    exactly as often as a person fed it."""
    sts.expected_code = None
    sts.code_validator = lambda _serial, code: code != WRONG
    box = make_box(policy_text=session_policy())
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})

    for bad in ("١٢٣٤٥٦", "１２３４５６", "12345", "1234567", "12345a", " 123456"):
        done = box.ctl("token", bad)
        assert done.returncode == 2, (bad, done)
        assert bad.strip() not in done.stderr
        if bad == bad.strip():  # a line read from stdin is stripped, as ykman's output needs
            piped = box.ctl("token", input=bad + "\n")
            assert piped.returncode == 2, (bad, piped)
    assert not [c for c in sts.calls if c.action == "GetSessionToken"]

    wrong = box.ctl("token", WRONG)
    assert wrong.returncode == 1 and "refused the MFA code" in wrong.stderr
    assert box.states()["session-alice"] == "awaiting-code"

    assert box.ctl("token", RIGHT).returncode == 0
    assert box.states()["session-alice"] == "fresh"
    refresh = box.ctl("refresh", "session-alice")
    assert refresh.returncode == 0
    box.wait_states({"session-alice": "awaiting-code"})
    reused = box.ctl("token", RIGHT)
    assert reused.returncode == 1, reused

    sts.fail_next("GetSessionToken", "http500")
    failed = box.ctl("token", TRANSIENT)
    assert failed.returncode == 1, failed
    box.wait_states({"session-alice": "awaiting-code"})
    time.sleep(1)  # room for a (wrong) automatic retry to show up in the calls
    assert box.ctl("token", LATER).returncode == 0

    assert (_sent(sts, WRONG), _sent(sts, RIGHT), _sent(sts, TRANSIENT)) == (1, 2, 1)
    assert _sent(sts, LATER) == 1
    assert len([c for c in sts.calls if c.action == "GetSessionToken"]) == 5


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.case(
    "STS and codes",
    "throttling, 5xx, a dropped connection and a hanging STS (CREDD_STS_READ_TIMEOUT=1)",
    "each retried with backoff; the credentials kept meanwhile; status shows the attempt; "
    "exactly one retry each, no burst",
)
def test_transient_sts_failures_are_retried_keeping_the_credentials(
    make_box: Callable[..., Box], sts: RecordingSts
) -> None:
    """Four fresh roles are refreshed while STS throttles, fails with 500, drops the
    connection and hangs past the 1 s read timeout (one fault each): `credctl refresh`
    returns promptly, each role stays `refreshing` with its old credentials in the file
    and in memory and `attempt 1 failed ... retrying at` in status; each is renewed by
    its own retry, so STS sees exactly 4 + 4 + 4 AssumeRole calls."""
    roles = ("role-a", "role-b", "role-c", "role-d")
    box = make_box(policy_text=role_policy(*roles), extra_env={"CREDD_STS_READ_TIMEOUT": "1"})
    box.start()
    box.wait_states(dict.fromkeys(roles, "fresh"))
    before = box.credentials.read_bytes()
    held = {r: json.loads(box.ctl("credential-process", r).stdout)["AccessKeyId"] for r in roles}
    for fault in ("throttle", "http500", "drop_connection", hang(4)):
        sts.fail_next("AssumeRole", fault)

    done = box.ctl("refresh", timeout=20)
    assert done.returncode == 1, done
    for role in roles:
        entry = box.status_of(role)
        assert entry["state"] == "refreshing", entry
        assert re.search(r"attempt 1 failed: .*; retrying at \S+Z", entry["last_error"]), entry
        process = json.loads(box.ctl("credential-process", role).stdout)
        assert process["AccessKeyId"] == held[role]
    assert box.credentials.read_bytes() == before
    errors = " ".join(box.status_of(r)["last_error"] for r in roles)
    for aws_said in ("Throttling", "InternalFailure", "timeout", "Connection"):
        assert aws_said.lower() in errors.lower(), errors

    box.wait_states(dict.fromkeys(roles, "fresh"), timeout=30)
    for role in roles:
        assert box.status_of(role)["last_error"] is None
        assert json.loads(box.ctl("credential-process", role).stdout)["AccessKeyId"] != held[role]
    # The fake records a call when it answers: the hung one (4 s) may still be held after
    # its retry has renewed the role. Wait for it, then count.
    deadline = time.monotonic() + 10
    while not any(c.fault == "hang" for c in sts.calls) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len([c for c in sts.calls if c.action == "AssumeRole"]) == 12


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.case(
    "STS and codes",
    "connection refused (nothing listens where STS should be)",
    "retried with growing backoff; the credentials on disk are kept and used; status shows it",
)
def test_connection_refused_backs_off_and_keeps_the_credentials(
    make_box: Callable[..., Box],
) -> None:
    """A role with 50 minutes left on disk and no STS at all: `credctl refresh` fails
    (exit 1), the role stays `refreshing` with the file untouched and credential-process
    still serving the held key; attempts follow one another at backoff pace (attempt 2
    comes, and no attempt 4 has come by then)."""
    expires = format_utc(datetime.now(UTC) + timedelta(minutes=50))
    held = (
        "\n[role-a]\naws_access_key_id = ASIAHELDKEY000000001\n"
        "aws_secret_access_key = CANARYheldSecretFFFFFFFFFF\n"
        "aws_session_token = CANARYheldTokenGGGGGGGGGG\n"
        f"x_security_token_expires = {expires}\n"
    )
    from relsupport import WATCH

    WATCH.secret("CANARYheldSecretFFFFFFFFFF", "CANARYheldTokenGGGGGGGGGG")
    box = make_box(
        policy_text=role_policy("role-a"),
        credentials_text=CREDENTIALS_TEXT + held,
        sts_url=f"http://127.0.0.1:{_free_port()}",
    )
    box.start()
    assert box.states() == {"role-a": "fresh"}
    before = box.credentials.read_bytes()
    done = box.ctl("refresh", "role-a")
    assert done.returncode == 1
    entry = box.status_of("role-a")
    assert entry["state"] == "refreshing"
    assert "attempt 1 failed" in entry["last_error"]
    assert "ASIAHELDKEY000000001" in box.ctl("credential-process", "role-a").stdout
    second = wait_until(
        "a second attempt",
        lambda: "attempt 2 failed" in (e := box.status_of("role-a"))["last_error"] and e,
        timeout=20,
    )
    assert second["state"] == "refreshing"
    assert "attempt 4" not in box.status_of("role-a")["last_error"]
    assert box.credentials.read_bytes() == before
