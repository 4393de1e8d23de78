"""Each profile's renewal as an explicit state machine: one pure function, `step`.

`step(view, event, now)` answers what becomes of a profile when something happens
to it: its new state, the one action to take now, and when its one timer fires
next. The daemon (core.py) only carries that out; it never changes a state by
itself. The function reads no clock and does no I/O, so tests walk every
(state, event) pair, and a stateful property test drives the whole daemon
through random sequences to check that no profile is ever stranded (SPEC.md):
at every moment each profile has valid credentials with a renewal planned, a
renewal in flight, a retry planned, an open request for a code that the person
has been told about, or a problem that only a reload can fix, shown in status.
A role chained on a managed source may instead follow its source: it is renewed
right after the source, which has one of the above.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from credd.credentials import format_utc
from credd.daemon import planner
from credd.states import State

# A role whose next renewal falls this close to (or after) its source's follows the
# source: it is renewed right after the source, not on a timer of its own.
FOLLOW_TOLERANCE = timedelta(seconds=60)


class Event(StrEnum):
    """What can happen to a profile."""

    PLAN = "plan"  # start or reload: what the file or memory holds is known
    DUE = "due"  # its timer fired, or the heartbeat found it overdue
    CODE_FED = "code-fed"  # a person (or a code command) gave a code: STS is called with it
    REFRESH = "refresh"  # `credctl refresh` named it, or its managed source was renewed
    WRITTEN = "written"  # new credentials are in the file
    WRITE_FAILED = "write-failed"  # they are held in memory only
    CODE_REJECTED = "code-rejected"  # AWS refused a code, or it may have been spent in transit
    STS_RETRYABLE = "sts-retryable"  # throttling, 5xx, network: worth another try
    STS_FAILED = "sts-failed"  # what a retry will not fix (keys refused, no such role)
    WAITING_FOR_SOURCE = "waiting-for-source"  # a chained role's source has no usable session
    BLOCKED = "blocked"  # a problem only a reload or a change to the credentials file fixes
    RAN_OUT = "ran-out"  # the heartbeat saw credentials expire while it followed its source
    OVERWRITTEN = "overwritten"  # another program replaced its section in the file
    KEYS_UNAVAILABLE = "keys-unavailable"  # the source's keys cannot be read now (keyring locked)
    KEYS_READY = "keys-ready"  # they can be read again


class Action(StrEnum):
    """The one thing the daemon does now for the profile."""

    NONE = "none"
    RENEW = "renew"  # call STS now, with no code
    ASK_CODE = "ask-code"  # open a request for a code and tell the person
    WRITE = "write"  # write the credentials held in memory (a write failed before)
    CHECK_KEYS = "check-keys"  # read the source's long-term keys, to know a code can be used


@dataclass(frozen=True)
class View:
    """What the machine needs to know of a profile; the daemon builds it from its entry."""

    state: State
    needs_code: bool
    expires_at: datetime | None
    issued_at: datetime | None
    refresh_before: int
    attempts: int = 0
    unwritten: bool = False  # credentials held in memory that the file does not have
    asked: bool = False  # a request for a code is open and has been announced
    planned: datetime | None = None  # the timer set before the event (before a fed code)
    source_renews_at: datetime | None = None  # a managed source's next renewal, if planned
    error: str | None = None  # the last error shown
    keys_blocked: bool = False  # the source's long-term keys could not be read last time


@dataclass(frozen=True)
class Decision:
    """The profile's new state, the action to take now, and its one timer (None: none)."""

    state: State
    action: Action = Action.NONE
    when: datetime | None = None
    error: str | None = None
    attempts: int = 0
    asked: bool = False


def step(
    view: View, event: Event, now: datetime, *, error: str | None = None, jitter: float = 1.0
) -> Decision:
    """The transition table. `error` says what failed; `jitter` in [0, 1] spreads retries."""
    valid = view.expires_at is not None and view.expires_at > now
    if event is Event.PLAN:
        # A new start: an error shown before (a problem since fixed) is not carried over.
        view = replace(view, error=None)
        if valid and view.unwritten:
            return Decision(State.FRESH, Action.WRITE, attempts=view.attempts)
        return _fresh(view, now) if valid else _due(view, now)
    if event is Event.CODE_FED:
        # The timer stays: should AWS refuse a code fed ahead of time, the plan holds.
        return Decision(
            State.REFRESHING,
            when=view.planned,
            error=view.error,
            attempts=view.attempts,
            asked=view.asked,
        )
    if event is Event.OVERWRITTEN:
        return Decision(State.FRESH, Action.WRITE, attempts=view.attempts)
    if event is Event.KEYS_UNAVAILABLE:
        # A locked or absent keyring: only this profile waits, and tries again by itself.
        attempts = view.attempts + 1
        when = now + timedelta(seconds=planner.backoff_delay(attempts, rand=lambda: jitter))
        message = f"{error}; trying again at {format_utc(when)}"
        return Decision(State.ERROR, when=when, error=message, attempts=attempts)
    if event is Event.KEYS_READY:
        return _due(replace(view, error=None, attempts=0, asked=False), now)
    if view.keys_blocked and view.needs_code and event in (Event.DUE, Event.REFRESH):
        # No code is asked for until the keys it would be used with can be read.
        return Decision(State.ERROR, Action.CHECK_KEYS, error=view.error, attempts=view.attempts)
    if event is Event.DUE:
        if view.unwritten and valid and now < _renewal_time(view):
            # The timer was a write retry and the credentials are still worth writing.
            return Decision(State.ERROR, Action.WRITE, error=view.error, attempts=view.attempts)
        return _due(view, now)
    if event is Event.REFRESH:
        return _due(view, now)
    if event is Event.WRITTEN:
        return _fresh(replace(view, unwritten=False, attempts=0, error=None), now)
    if event is Event.WRITE_FAILED:
        attempts = view.attempts + 1
        retry = now + timedelta(seconds=planner.backoff_delay(attempts, rand=lambda: jitter))
        when = min(retry, _renewal_time(view)) if valid else now
        return Decision(State.ERROR, when=when, error=error, attempts=attempts)
    if event is Event.CODE_REJECTED:
        if view.asked:
            return Decision(State.AWAITING_CODE, error=error, asked=True)
        if valid and view.planned is not None:
            # A code fed ahead of time: the session held is still good and still planned.
            return Decision(State.FRESH, when=view.planned, error=error)
        return Decision(State.AWAITING_CODE, Action.ASK_CODE, error=error, asked=True)
    if event is Event.STS_RETRYABLE:
        attempts = view.attempts + 1
        when = now + timedelta(seconds=planner.backoff_delay(attempts, rand=lambda: jitter))
        message = f"attempt {attempts} failed: {error}; retrying at {format_utc(when)}"
        state = State.REFRESHING if valid else State.EXPIRED
        return Decision(state, when=when, error=message, attempts=attempts)
    if event is Event.STS_FAILED:
        if view.needs_code:
            # Nothing to retry without the person: tell them why, and take a new code once
            # they have fixed it.
            return Decision(State.ERROR, Action.ASK_CODE, error=error, asked=True)
        attempts = view.attempts + 1
        when = now + timedelta(seconds=planner.backoff_delay(attempts, rand=lambda: jitter))
        return Decision(State.ERROR, when=when, error=error, attempts=attempts)
    if event is Event.WAITING_FOR_SOURCE:
        if view.expires_at is None:
            # Never obtained: nothing has expired, and waiting for the source is no error.
            return Decision(State.PENDING)
        return Decision(State.FRESH if valid else State.EXPIRED, error=error)
    if event is Event.BLOCKED:
        return Decision(State.ERROR, error=error)
    if event is Event.RAN_OUT:
        return Decision(State.EXPIRED, error=view.error)
    raise AssertionError(f"unhandled event {event}")  # pragma: no cover


def _due(view: View, now: datetime) -> Decision:
    """Renewal time: a role renews; an MFA session asks for a code (once)."""
    if view.needs_code:
        return Decision(
            State.AWAITING_CODE,
            _ask_unless(view),
            error=view.error,
            asked=True,
            attempts=view.attempts,
        )
    return Decision(State.REFRESHING, Action.RENEW, error=view.error, attempts=view.attempts)


def _ask_unless(view: View) -> Action:
    return Action.NONE if view.asked else Action.ASK_CODE


def _fresh(view: View, now: datetime) -> Decision:
    """Valid credentials: plan their renewal, or follow the source that will renew first."""
    when = _renewal_time(view)
    source = view.source_renews_at
    if source is not None and when >= source - FOLLOW_TOLERANCE:
        return Decision(State.FRESH, error=view.error)
    return Decision(State.FRESH, when=when, error=view.error)


def _renewal_time(view: View) -> datetime:
    assert view.expires_at is not None and view.issued_at is not None
    return planner.refresh_at(view.expires_at, view.refresh_before, view.issued_at)
