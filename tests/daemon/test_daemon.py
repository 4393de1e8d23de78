"""The daemon's behaviour on a fake clock: schedules, chains, caps, failures, suspends.

`Daemon` runs in-process with hand-written fakes (tests/support/fakes.py): a
twelve-hour schedule is walked through in milliseconds.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from support.fakes import START, MemoryWriter, Rig, make_policy, make_rig, settle

from credd.errors import (
    BadInputError,
    CodeRejectedError,
    Fault,
    FileWriteError,
    StsError,
    StsTransientError,
)
from credd.policy import Profile
from credd.states import State

CHAIN = """
version: 1
defaults: {refresh_before: 15m}
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
    duration: 12h
  admin:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/Admin
    duration: 1h
  ro:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/ReadOnly
    duration: 30m
"""

ROLE_ON_KEYS = """
version: 1
profiles:
  ops:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops
    duration: 1h
    refresh_before: 10m
"""


def state(rig: Rig, name: str) -> State:
    entry = rig.daemon.entry(name)
    assert entry is not None
    return entry.state


async def started(text: str) -> Rig:
    rig = make_rig(text)
    await rig.daemon.start()
    await settle()
    return rig


async def test_start_asks_for_a_code_and_roles_wait_for_their_source() -> None:
    """Nothing on disk: the MFA session awaits a code; chained roles cannot be renewed yet,
    and never having had credentials they are `pending`, not `expired`, with no error."""
    rig = await started(CHAIN)
    assert state(rig, "session-x") is State.AWAITING_CODE
    admin = rig.daemon.entry("admin")
    assert admin is not None
    assert (admin.state, admin.last_error) == (State.PENDING, None)
    assert rig.sts.calls == []
    assert any("awaiting code: session-x" in n for n in rig.notes)


async def test_a_code_renews_the_session_then_every_dependent() -> None:
    """The source first, its dependents right after, with no further input."""
    rig = await started(CHAIN)
    result = await rig.daemon.feed_code("123456", None)
    await settle()
    assert result["profile"] == "session-x"
    assert [c.action for c in rig.sts.calls] == ["GetSessionToken", "AssumeRole", "AssumeRole"]
    assert rig.sts.calls[0].code == "123456"
    assert all(c.code is None for c in rig.sts.calls[1:])
    assert {state(rig, n) for n in ("session-x", "admin", "ro")} == {State.FRESH}
    assert rig.writer.sections["admin"]["aws_session_token"]
    assert rig.writer.batches[0] == ["session-x"], "the fed code's write is not held back"


async def test_renewal_is_planned_exactly_refresh_before_ahead_of_expiry() -> None:
    """12h session, 15m lead: the next renewal is at expiry minus 15 minutes."""
    rig = await started(CHAIN)
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    assert rig.scheduler.when("session-x") == START + timedelta(hours=12, minutes=-15)
    assert rig.scheduler.when("admin") == START + timedelta(minutes=45)
    assert rig.scheduler.when("ro") == START + timedelta(minutes=15)


async def test_an_mfa_session_at_its_renewal_time_awaits_a_code_and_keeps_its_credentials() -> None:
    """At expiry - refresh_before: awaiting-code, old credentials left in place."""
    rig = await started(CHAIN)
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    old = rig.writer.sections["session-x"]["aws_session_token"]
    rig.clock.advance(timedelta(hours=11, minutes=45).total_seconds())
    await rig.scheduler.run_due()
    assert state(rig, "session-x") is State.AWAITING_CODE
    assert rig.writer.sections["session-x"]["aws_session_token"] == old


async def test_a_chained_role_is_capped_to_what_its_source_has_left() -> None:
    """A role renewed late in its source's life gets only the time the source has left,
    and is then renewed right after the source instead of on its own timer."""
    text = CHAIN.replace("duration: 12h", "duration: 80m")
    rig = await started(text)
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    assert rig.sts.calls[1].duration == 3600
    rig.clock.advance(45 * 60)
    await rig.scheduler.run_due()
    admin_calls = [c for c in rig.sts.calls if c.role_arn and c.role_arn.endswith("Admin")]
    assert admin_calls[-1].duration == 35 * 60, "80m session - 45m elapsed"
    assert rig.scheduler.when("admin") is None, "now renewed with its source"
    entry = rig.daemon.entry("admin")
    assert entry is not None and entry.next_refresh_at is None


async def test_a_chained_role_never_asks_more_than_an_hour() -> None:
    """The role-chaining cap: a role on a session is asked for at most 3600 s."""
    text = CHAIN.replace("duration: 30m", "duration: 2h")
    rig = await started(text)
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    assert max(c.duration for c in rig.sts.calls if c.action == "AssumeRole") == 3600


async def test_a_role_on_long_term_keys_renews_with_no_prompt() -> None:
    """A role whose source holds long-term keys needs no code: renewed at start and on time."""
    rig = await started(ROLE_ON_KEYS)
    assert state(rig, "ops") is State.FRESH
    assert rig.scheduler.when("ops") == START + timedelta(minutes=50)
    rig.clock.advance(50 * 60)
    assert await rig.scheduler.run_due() == ["ops"]
    assert len(rig.sts.calls) == 2


async def test_a_suspend_across_a_renewal_is_caught_by_the_next_heartbeat() -> None:
    """The machine sleeps 2 hours past a role's renewal time: the heartbeat sees the clocks
    disagree, asks the scheduler to re-plan, and renews the overdue role at once."""
    rig = await started(ROLE_ON_KEYS)
    rig.clock.suspend(2 * 3600)
    rig.daemon.tick()
    await settle()
    assert rig.scheduler.wakeups == 1
    assert len(rig.sts.calls) == 2, "renewed once on waking, no burst"
    assert state(rig, "ops") is State.FRESH
    rig.daemon.tick()
    await settle()
    assert len(rig.sts.calls) == 2, "and not again at the next heartbeat"


async def test_a_wall_clock_jump_forward_a_day_renews_or_asks_at_once() -> None:
    """Wall clock +1 day: the role renews, the MFA session asks for a code, within one tick."""
    rig = await started(CHAIN)
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    calls = len(rig.sts.calls)
    rig.clock.jump(24 * 3600)
    rig.daemon.tick()
    await settle()
    assert rig.scheduler.wakeups == 1
    assert state(rig, "session-x") is State.AWAITING_CODE
    # The roles' source has expired on this clock: they wait for it (no failed STS burst).
    assert len(rig.sts.calls) == calls
    assert state(rig, "admin") is State.EXPIRED


async def test_a_wall_clock_jump_back_a_day_misses_nothing() -> None:
    """Wall clock -1 day: nothing fires early, the plan stands, and it fires when due."""
    rig = await started(ROLE_ON_KEYS)
    planned = rig.scheduler.when("ops")
    rig.clock.jump(-24 * 3600)
    rig.daemon.tick()
    await settle()
    assert rig.scheduler.wakeups == 1
    assert rig.scheduler.when("ops") == planned
    assert len(rig.sts.calls) == 1


async def test_a_timer_fired_late_is_still_run() -> None:
    """A job that comes due while nobody looked runs when the scheduler gets to it."""
    rig = await started(ROLE_ON_KEYS)
    rig.clock.advance(6 * 3600)
    assert await rig.scheduler.run_due() == ["ops"]
    assert state(rig, "ops") is State.FRESH


async def test_throttling_is_retried_with_backoff_and_shown_until_expiry() -> None:
    """Transient failures: retried with growing delays (jitter pinned at its top); status
    says so; once the credentials have expired the state is `expired` and retries go on."""
    rig = await started(ROLE_ON_KEYS)
    rig.sts.fail = [StsTransientError("Throttling: Rate exceeded")] * 3
    rig.clock.advance(50 * 60)
    await rig.scheduler.run_due()
    entry = rig.daemon.entry("ops")
    assert entry is not None
    assert entry.state is State.REFRESHING
    assert entry.last_error is not None and "attempt 1 failed: Throttling" in entry.last_error
    assert rig.scheduler.when("ops") == rig.clock.now() + timedelta(seconds=5)
    rig.clock.advance(5)
    await rig.scheduler.run_due()
    assert rig.scheduler.when("ops") == rig.clock.now() + timedelta(seconds=10)
    rig.clock.advance(15 * 60)  # past the old credentials' expiry
    await rig.scheduler.run_due()
    assert entry.state is State.EXPIRED
    assert "attempt 3 failed" in (entry.last_error or "")
    rig.clock.advance(60)
    await rig.scheduler.run_due()
    assert entry.state is State.FRESH and entry.last_error is None


async def test_rejected_long_term_keys_put_the_profile_in_error_and_spare_the_others() -> None:
    """StsError (bad keys): that profile is `error` with AWS's message; another still renews."""
    text = (
        ROLE_ON_KEYS
        + """  ops2:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops2
"""
    )
    rig = make_rig(text)
    rig.sts.fail = [StsError("InvalidClientTokenId: The security token is invalid")]
    await rig.daemon.start()
    await settle()
    states = {state(rig, "ops"), state(rig, "ops2")}
    assert states == {State.ERROR, State.FRESH}


async def test_a_rejected_code_is_reported_and_the_profile_keeps_waiting() -> None:
    """AccessDenied on a code: the feeder gets the error, nothing is retried, still waiting."""
    rig = await started(CHAIN)
    rig.sts.fail = [CodeRejectedError("the code was not accepted")]
    with pytest.raises(CodeRejectedError):
        await rig.daemon.feed_code("123456", None)
    await settle()
    assert state(rig, "session-x") is State.AWAITING_CODE
    assert len(rig.sts.calls) == 1


async def test_a_code_fed_ahead_of_time_that_aws_refuses_leaves_the_profile_fresh() -> None:
    """Fed early and refused: still fresh, renewal still planned where it was."""
    rig = await started(CHAIN)
    await rig.daemon.feed_code("123456", None)
    await settle()
    planned = rig.scheduler.when("session-x")
    rig.sts.fail = [CodeRejectedError("reused")]
    with pytest.raises(CodeRejectedError):
        await rig.daemon.feed_code("654321", "session-x")
    assert state(rig, "session-x") is State.FRESH
    assert rig.scheduler.when("session-x") == planned


async def test_a_code_without_profile_goes_to_the_longest_waiting_then_the_soonest_expiring() -> (
    None
):
    """SPEC `credctl token`: longest waiting first; if none waits, the soonest to expire."""
    text = (
        CHAIN
        + """  session-y:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/y
    duration: 1h
"""
    )
    rig = await started(text)
    rig.clock.advance(1)
    assert (await rig.daemon.feed_code("111111", None))["profile"] == "session-x"
    assert (await rig.daemon.feed_code("222222", None))["profile"] == "session-y"
    await settle()
    # Nobody waits now: session-y (1h) expires before session-x (12h).
    assert (await rig.daemon.feed_code("333333", None))["profile"] == "session-y"


@pytest.mark.parametrize(
    ("name", "fault"),
    [("nope", Fault.UNKNOWN_PROFILE), ("admin", Fault.NOT_AN_MFA_PROFILE)],
)
async def test_a_code_for_a_wrong_profile_is_bad_input(name: str, fault: int) -> None:
    """Unknown profile, or a role that takes no code: exit-2 faults, nothing sent."""
    rig = await started(CHAIN)
    with pytest.raises(BadInputError) as caught:
        await rig.daemon.feed_code("123456", name)
    assert caught.value.fault == fault
    assert rig.sts.calls == []


async def test_credentials_on_disk_are_picked_up_and_planned() -> None:
    """A fresh managed section with x_security_token_expires is kept, not renewed."""
    expires = (START + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    writer = MemoryWriter(
        {
            "default": {"aws_access_key_id": "AKIAFAKELONGTERM0001", "aws_secret_access_key": "s"},
            "session-x": {
                "aws_access_key_id": "ASIAONDISK",
                "aws_secret_access_key": "s",
                "aws_session_token": "t",
                "x_security_token_expires": expires,
            },
        }
    )
    rig = make_rig(CHAIN, writer)
    await rig.daemon.start()
    await settle()
    assert state(rig, "session-x") is State.FRESH
    assert rig.scheduler.when("session-x") == START + timedelta(hours=5, minutes=-15)
    # Its roles are renewed on it at once, with no code.
    assert [c.action for c in rig.sts.calls] == ["AssumeRole", "AssumeRole"]
    assert {c.profile_key for c in rig.sts.calls} == {"ASIAONDISK"}


async def test_a_failed_write_puts_the_profile_in_error_and_is_written_again() -> None:
    """A write that fails (disk full) leaves the profile in `error` with the reason; the
    credentials stay in memory and are written again by a timer of the scheduler's (on the
    injected clock, like every other wait) once the file can be written."""
    rig = make_rig(ROLE_ON_KEYS)
    rig.writer.fail = [FileWriteError("/x/credentials: No space left on device")]
    await rig.daemon.start()
    await settle()
    assert state(rig, "ops") is State.ERROR
    entry = rig.daemon.entry("ops")
    assert entry is not None and "No space left" in (entry.last_error or "")
    assert rig.daemon.credential_process("ops")["Version"] == 1, "held in memory meanwhile"
    retry = rig.scheduler.when("ops")
    assert retry == START + timedelta(seconds=5), "the first backoff step, jitter at its ceiling"
    rig.clock.advance(5)
    await rig.scheduler.run_due()
    assert "ops" in rig.writer.sections
    assert state(rig, "ops") is State.FRESH
    assert rig.daemon.credential_process("ops")["Version"] == 1


async def test_reload_keeps_unchanged_profiles_and_plans_new_ones() -> None:
    """A reload leaves an unchanged profile as it is and plans an added one."""
    rig = await started(ROLE_ON_KEYS)
    kept = rig.daemon.entry("ops")
    new_policy = make_policy(
        ROLE_ON_KEYS
        + """  ops3:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops3
"""
    )
    rig.daemon._load_policy = lambda: new_policy
    result = await rig.daemon.reload()
    await settle()
    assert result["profiles"] == 2
    assert rig.daemon.entry("ops") is kept
    assert state(rig, "ops3") is State.FRESH
    assert "RELOADING=1" in rig.notes and any(n.startswith("READY=1") for n in rig.notes)


async def test_credential_process_needs_valid_credentials() -> None:
    """Nothing valid held: a one-line error; fresh: the AWS JSON."""
    rig = await started(CHAIN)
    with pytest.raises(Exception, match="no valid credentials held for admin"):
        rig.daemon.credential_process("admin")
    await rig.daemon.feed_code("123456", None)
    await settle()
    data = rig.daemon.credential_process("admin")
    assert set(data) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}


async def test_status_json_has_the_spec_shape() -> None:
    """Every field SPEC.md lists, with times as UTC `Z` strings or null."""
    rig = await started(CHAIN)
    status = rig.daemon.status()
    assert set(status["daemon"]) >= {"pid", "version", "started_at", "policy", "credentials_file"}
    first = status["profiles"][0]
    assert set(first) >= {
        "name",
        "kind",
        "state",
        "expires_at",
        "next_refresh_at",
        "source_profile",
        "mfa_serial",
        "last_error",
    }
    assert first["kind"] == "mfa-session" and first["state"] == "awaiting-code"
    assert status["daemon"]["started_at"].endswith("Z")


async def test_a_managed_section_overwritten_by_another_program_is_put_back() -> None:
    """The AWS CLI writes with no lock and can replace a renewal just written: the next
    heartbeat sees the file changed, finds the section differs, and writes it again."""
    rig = await started(ROLE_ON_KEYS)
    rig.daemon.tick()
    await settle()
    written = dict(rig.writer.sections["ops"])
    rig.writer.overwrite("ops", {"aws_access_key_id": "AKIAOTHER", "aws_secret_access_key": "x"})
    rig.daemon.tick()
    await settle()
    assert rig.writer.sections["ops"] == written
    batches = len(rig.writer.batches)
    rig.daemon.tick()
    await settle()
    assert len(rig.writer.batches) == batches, "an unchanged file is not read or written again"


async def test_a_role_following_its_source_expires_when_the_source_waits_too_long() -> None:
    """A capped role has no timer of its own: when its source waits for a code past its
    expiry, the heartbeat moves the role from fresh to expired (never a stale `fresh`)."""
    rig = await started(CHAIN.replace("duration: 12h", "duration: 80m"))
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    rig.clock.advance(45 * 60)
    await rig.scheduler.run_due()
    assert state(rig, "admin") is State.FRESH and rig.scheduler.when("admin") is None
    rig.clock.advance(60 * 60)  # past the source's expiry, no code fed
    await rig.scheduler.run_due()
    rig.daemon.tick()
    await settle()
    assert state(rig, "session-x") is State.AWAITING_CODE
    assert state(rig, "admin") is State.EXPIRED


async def test_every_state_is_known_when_start_returns() -> None:
    """READY=1 follows start(): no profile may still be `pending` then."""
    rig = make_rig(CHAIN + ROLE_ON_KEYS.split("profiles:\n")[1])
    await rig.daemon.start()
    assert "pending" not in rig.daemon.status_text()
    assert all(p["state"] != "pending" for p in rig.daemon.status()["profiles"])


async def test_an_unexpected_failure_is_an_error_with_a_retry_not_a_stuck_refresh() -> None:
    """A failure outside credd's own errors (a bug, an OS error) puts the profile in `error`
    and plans a retry instead of leaving it `refreshing` forever."""
    rig = make_rig(ROLE_ON_KEYS)
    rig.sts.fail = [RuntimeError("boom")]  # type: ignore[list-item]
    await rig.daemon.start()
    await settle()
    entry = rig.daemon.entry("ops")
    assert entry is not None and entry.state is State.ERROR
    assert entry.last_error == "unexpected failure while renewing: RuntimeError"
    assert rig.scheduler.when("ops") is not None
    rig.clock.advance(60)
    await rig.scheduler.run_due()
    assert entry.state is State.FRESH


async def test_a_code_command_answering_after_a_reload_removed_its_profile_is_ignored() -> None:
    """A code command still running when a reload removes its profile: its code is not
    sent to STS, nothing is written, and no timer is left behind."""
    release = asyncio.Event()

    class SlowCodeCommand:
        async def code_needed(self, profile: Profile, message: str) -> str | None:
            await release.wait()
            return "123456"

    rig = make_rig(CHAIN)
    rig.daemon._code_helper = SlowCodeCommand()
    await rig.daemon.start()
    await settle()
    assert state(rig, "session-x") is State.AWAITING_CODE
    rig.daemon._load_policy = lambda: make_policy(ROLE_ON_KEYS)
    await rig.daemon.reload()
    await settle()
    calls = len(rig.sts.calls)
    release.set()
    await settle()
    assert len(rig.sts.calls) == calls, "the code was not used"
    assert "session-x" not in rig.writer.sections
    assert rig.scheduler.when("session-x") is None


async def test_a_stopping_daemon_starts_no_new_renewal() -> None:
    """Once stop() has begun, token/refresh/reload are refused: a renewal started then could
    have its write cut off by the exit. Status still answers."""
    rig = await started(CHAIN)
    await rig.daemon.stop()
    reply = await rig.daemon.handle({"op": "token", "code": "123456"})
    assert reply["ok"] is False and "stopping" in reply["error"]["message"]
    assert rig.sts.calls == []
    assert (await rig.daemon.handle({"op": "status"}))["ok"] is True


async def test_a_write_is_followed_by_a_look_for_late_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A moment after each write the writer is asked to carry over what another program
    wrote into the file the write replaced (and to let that file go)."""
    monkeypatch.setattr("credd.daemon.custody.CARRY_OVER_SECONDS", 0.0)
    writer = MemoryWriter()
    rig = make_rig(ROLE_ON_KEYS, writer)
    assert writer.carry_overs == 0
    await rig.daemon.start()
    await settle()
    assert writer.batches == [["ops"]]
    assert writer.carry_overs == 1  # once: nothing is left watched, so no second look


async def test_moving_to_another_credentials_file_lets_the_old_writer_go() -> None:
    """A reload that names another credentials file closes the old file's writer (which
    may still hold a replaced file open)."""
    rig = await started(ROLE_ON_KEYS)
    rig.daemon._load_policy = lambda: make_policy(
        ROLE_ON_KEYS + "credentials_file: /tmp/credd-elsewhere/credentials\n"
    )
    assert not rig.writer.closed
    await rig.daemon.reload()
    await settle()
    assert rig.writer.closed
