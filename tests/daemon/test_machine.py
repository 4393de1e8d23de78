"""The state machine's table (credd/daemon/machine.py), walked exhaustively.

Every (state, event) pair, for MFA sessions and roles, with credentials valid or not,
held in memory only or not, a code request open or not, a timer set or not: the
decision never strands the profile, and the transitions SPEC.md names hold.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from credd.daemon.machine import Action, Decision, Event, View, step
from credd.states import State

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

# The events after which a profile may rightly wait on something outside itself: a policy
# problem (shown; a reload fixes it) or its managed source (which has a plan of its own).
WAITS_ON_OTHERS = {Event.BLOCKED, Event.WAITING_FOR_SOURCE, Event.RAN_OUT}


def view(**changes: object) -> View:
    base = {
        "state": State.FRESH,
        "needs_code": True,
        "expires_at": NOW + HOUR,
        "issued_at": NOW - HOUR,
        "refresh_before": 900,
    }
    base.update(changes)
    return View(**base)  # type: ignore[arg-type]


def covered(decision: Decision) -> bool:
    """Something will happen without anyone else's help: work now, a timer, or a person told."""
    return decision.action is not Action.NONE or decision.when is not None or decision.asked


VIEWS = [
    view(
        state=state,
        needs_code=needs_code,
        expires_at=expires,
        unwritten=unwritten and expires is not None,
        asked=asked and needs_code,
        planned=planned,
        attempts=attempts,
        keys_blocked=keys_blocked,
    )
    for state, needs_code, expires, unwritten, asked, planned, attempts, keys_blocked in (
        itertools.product(
            State,
            (True, False),
            (NOW + HOUR, NOW - HOUR, None),
            (False, True),
            (False, True),
            (None, NOW + HOUR / 2, NOW - HOUR / 2),
            (0, 3),
            (False, True),
        )
    )
]


# CODE_FED is followed at once by the STS call with that code (core.Daemon._feed), the one
# piece of work the machine does not order, since only the caller holds the code.
@pytest.mark.parametrize(
    "event", [e for e in Event if e not in WAITS_ON_OTHERS and e is not Event.CODE_FED]
)
def test_no_decision_strands_a_profile(event: Event) -> None:
    """Whatever the profile's situation, each event leaves it with work, a timer or an open
    request that was announced (`asked` is only set together with ASK_CODE or on top of an
    earlier announcement)."""
    for before in VIEWS:
        if before.expires_at is None and (before.unwritten or event is Event.WRITTEN):
            continue  # what credd writes always has an expiry
        decision = step(before, event, NOW, error="boom")
        assert covered(decision), (before, event, decision)
        if decision.asked and not before.asked:
            assert decision.action is Action.ASK_CODE, (before, event, decision)


@pytest.mark.parametrize("event", sorted(WAITS_ON_OTHERS))
def test_waiting_on_others_never_holds_a_timer_or_starts_work(event: Event) -> None:
    """Blocked and source-following profiles act only when the policy or the source does."""
    decision = step(view(needs_code=False), event, NOW, error="why")
    assert decision.action is Action.NONE and decision.when is None


def test_writes_failing_until_expiry_then_ask_for_a_code() -> None:
    """Bug 1: a write retry comes due after the credentials expired: ask for a code."""
    failed = step(view(unwritten=True), Event.WRITE_FAILED, NOW, error="disk full")
    assert failed.state is State.ERROR and failed.when is not None
    later = view(
        state=failed.state,
        unwritten=True,
        expires_at=NOW - HOUR,
        error=failed.error,
        attempts=failed.attempts,
    )
    due = step(later, Event.DUE, NOW)
    assert (due.state, due.action, due.asked) == (State.AWAITING_CODE, Action.ASK_CODE, True)


def test_a_write_retry_before_renewal_time_writes_again() -> None:
    decision = step(view(state=State.ERROR, unwritten=True), Event.DUE, NOW)
    assert decision.action is Action.WRITE


def test_a_write_retry_never_waits_past_the_renewal_time() -> None:
    decision = step(
        view(unwritten=True, expires_at=NOW + timedelta(minutes=16)),
        Event.WRITE_FAILED,
        NOW,
        error="x",
        jitter=1.0,
    )
    assert decision.when is not None and decision.when <= NOW + timedelta(minutes=1)


@pytest.mark.parametrize("state", [State.ERROR, State.EXPIRED])
def test_a_code_rejected_for_a_profile_in_error_or_expired_is_announced(state: State) -> None:
    """Bug 2: nobody was asked before: the rejection opens an announced request."""
    decision = step(view(state=state, expires_at=NOW - HOUR), Event.CODE_REJECTED, NOW, error="no")
    assert (decision.state, decision.action, decision.asked) == (
        State.AWAITING_CODE,
        Action.ASK_CODE,
        True,
    )


def test_a_code_fed_ahead_of_time_and_refused_keeps_the_plan() -> None:
    planned = NOW + HOUR / 2
    decision = step(view(planned=planned), Event.CODE_REJECTED, NOW, error="no")
    assert (decision.state, decision.when, decision.action) == (State.FRESH, planned, Action.NONE)


def test_a_code_refused_while_awaiting_is_not_announced_twice() -> None:
    decision = step(view(state=State.REFRESHING, asked=True), Event.CODE_REJECTED, NOW)
    assert (decision.state, decision.action, decision.asked) == (
        State.AWAITING_CODE,
        Action.NONE,
        True,
    )


def test_refused_keys_ask_an_mfa_session_for_a_code_with_the_reason() -> None:
    decision = step(view(asked=True), Event.STS_FAILED, NOW, error="InvalidClientTokenId")
    assert (decision.state, decision.action) == (State.ERROR, Action.ASK_CODE)
    assert decision.error == "InvalidClientTokenId"


def test_refused_keys_retry_a_role_with_backoff() -> None:
    decision = step(view(needs_code=False, attempts=2), Event.STS_FAILED, NOW, error="x")
    assert decision.state is State.ERROR and decision.attempts == 3
    assert decision.when == NOW + timedelta(seconds=20)


def test_throttling_retries_and_says_when() -> None:
    decision = step(
        view(needs_code=False, expires_at=None),
        Event.STS_RETRYABLE,
        NOW,
        error="Throttling",
        jitter=1.0,
    )
    assert decision.state is State.EXPIRED and decision.when == NOW + timedelta(seconds=5)
    assert decision.error == "attempt 1 failed: Throttling; retrying at 2026-11-26T08:00:05Z"


def test_a_role_that_would_renew_with_its_source_follows_it() -> None:
    """A role capped to its source renews right after the source, not on a timer."""
    source_at = NOW + timedelta(minutes=44, seconds=30)
    decision = step(view(needs_code=False, source_renews_at=source_at), Event.WRITTEN, NOW)
    assert decision.when is None and decision.state is State.FRESH
    sooner = step(view(needs_code=False, source_renews_at=NOW + 3 * HOUR), Event.WRITTEN, NOW)
    assert sooner.when == NOW + timedelta(minutes=45)


def test_valid_credentials_kept_over_a_reload_but_not_on_disk_are_written() -> None:
    decision = step(view(state=State.PENDING, unwritten=True), Event.PLAN, NOW)
    assert decision.action is Action.WRITE


def test_a_fed_code_keeps_the_timer_and_the_open_request() -> None:
    planned = NOW + HOUR / 2
    decision = step(view(planned=planned, asked=True), Event.CODE_FED, NOW)
    assert (decision.state, decision.when, decision.asked) == (State.REFRESHING, planned, True)


def test_a_role_never_obtained_waiting_for_its_source_is_pending_with_no_error() -> None:
    """Nothing ever held: `pending`, no error; credentials that ran out: `expired`, saying why."""
    waiting = "waiting for session-x to have a valid session"
    never = step(
        view(needs_code=False, expires_at=None), Event.WAITING_FOR_SOURCE, NOW, error=waiting
    )
    assert (never.state, never.error, never.when) == (State.PENDING, None, None)
    ran_out = step(
        view(needs_code=False, expires_at=NOW - HOUR), Event.WAITING_FOR_SOURCE, NOW, error=waiting
    )
    assert (ran_out.state, ran_out.error) == (State.EXPIRED, waiting)


def test_a_plan_does_not_carry_an_old_error_over() -> None:
    """A profile blocked by a problem since fixed is planned afresh: no error left shown."""
    blocked = view(state=State.ERROR, error="the file was broken", expires_at=None)
    decision = step(blocked, Event.PLAN, NOW)
    assert (decision.state, decision.error, decision.action) == (
        State.AWAITING_CODE,
        None,
        Action.ASK_CODE,
    )


def test_a_locked_keyring_makes_the_profile_wait_and_try_again() -> None:
    """Keys that cannot be read (a locked keyring): `error` with the reason and a retry
    timer; an open request for a code is closed (no code could be used)."""
    for needs_code in (True, False):
        decision = step(
            view(needs_code=needs_code, asked=needs_code, state=State.REFRESHING),
            Event.KEYS_UNAVAILABLE,
            NOW,
            error="the keyring is locked",
            jitter=0.0,
        )
        assert decision.state is State.ERROR and decision.action is Action.NONE
        assert decision.when is not None and decision.when > NOW
        assert decision.error is not None and decision.error.startswith("the keyring is locked")
        assert not decision.asked and decision.attempts == 1


def test_no_code_is_asked_for_until_the_keys_can_be_read() -> None:
    """The retry of an MFA session checks the keys first; once they read, the code is asked
    for (and the error cleared). A role simply renews."""
    blocked = view(state=State.ERROR, keys_blocked=True, error="locked", attempts=2)
    for event in (Event.DUE, Event.REFRESH):
        decision = step(blocked, event, NOW)
        assert decision.action is Action.CHECK_KEYS and decision.state is State.ERROR
    ready = step(blocked, Event.KEYS_READY, NOW)
    assert ready.state is State.AWAITING_CODE and ready.action is Action.ASK_CODE
    assert ready.error is None and ready.asked and ready.attempts == 0
    role = view(needs_code=False, state=State.ERROR, keys_blocked=True, expires_at=None)
    assert step(role, Event.DUE, NOW).action is Action.RENEW
