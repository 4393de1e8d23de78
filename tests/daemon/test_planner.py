"""Pure planning: refresh times, role caps, backoff, what is read back from disk, code targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from credd.credentials import Credentials
from credd.daemon import planner
from credd.states import State

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def creds(hours: float) -> Credentials:
    return Credentials("ASIAX", "s", "t", NOW + timedelta(hours=hours))


def expiry(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def test_refresh_is_refresh_before_ahead_of_expiry() -> None:
    """The normal case: expiry minus the lead."""
    assert planner.refresh_at(expiry(12), 900, NOW) == NOW + timedelta(hours=12, minutes=-15)


def test_a_lead_longer_than_half_the_life_cannot_make_a_renewal_loop() -> None:
    """Duration 20m, lead 15m: renewed at the half-life (10m), not 5m after issue."""
    assert planner.refresh_at(expiry(1 / 3), 900, NOW) == NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("requested", "source_hours", "expected"),
    [
        (3600, None, 3600),  # long-term keys: as asked
        (7200, 12, 3600),  # chained: at most an hour
        (3600, 0.5, 1800),  # never outlives its source
        (3600, 0.2, None),  # less than AWS's 15-minute floor left: wait for the source
    ],
)
def test_role_duration(requested: int, source_hours: float | None, expected: int | None) -> None:
    """Caps for a role: the chaining limit and what the source has left."""
    source = creds(source_hours) if source_hours is not None else None
    assert planner.role_duration(requested, source=source, now=NOW) == expected


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    """5 s, 10 s, 20 s ... up to 5 minutes; jitter keeps each in the upper half of its step."""
    assert planner.backoff_delay(1, rand=lambda: 1.0) == 5
    assert planner.backoff_delay(2, rand=lambda: 1.0) == 10
    assert planner.backoff_delay(2, rand=lambda: 0.0) == 5
    assert planner.backoff_delay(30, rand=lambda: 1.0) == planner.BACKOFF_CAP_SECONDS


def test_only_a_complete_section_with_an_expiry_is_taken_from_disk() -> None:
    """Keys, secret, token and x_security_token_expires: all four, or it is renewed."""
    full = {
        "aws_access_key_id": "ASIAX",
        "aws_secret_access_key": "s",
        "aws_session_token": "t",
        "x_security_token_expires": "2026-11-26T20:00:00Z",
    }
    held = planner.credentials_from_section(full)
    assert held is not None and held.expires_at == datetime(2026, 11, 26, 20, tzinfo=UTC)
    for key in full:
        assert planner.credentials_from_section({k: v for k, v in full.items() if k != key}) is None
    assert planner.credentials_from_section({**full, "x_security_token_expires": "soon"}) is None


def test_long_term_keys_take_a_token_under_either_name() -> None:
    """A source someone else keeps may hold a session token under the old key."""
    keys = planner.long_term_credentials(
        {"aws_access_key_id": "A", "aws_secret_access_key": "s", "aws_security_token": "old"}
    )
    assert keys is not None and keys.session_token == "old"
    assert planner.long_term_credentials({"aws_access_key_id": "A"}) is None


def test_a_code_goes_to_the_longest_waiting_profile() -> None:
    """Waiting profiles first, oldest wait first; one being renewed is skipped."""
    w = planner.Waiting
    chosen = planner.pick_code_target(
        [
            w("b", State.AWAITING_CODE, NOW, None),
            w("a", State.AWAITING_CODE, NOW - timedelta(minutes=1), None),
            w("c", State.FRESH, None, NOW + timedelta(minutes=5)),
            w("d", State.REFRESHING, None, None),
        ]
    )
    assert chosen == "a"


def test_with_none_waiting_a_code_renews_the_soonest_to_expire() -> None:
    """Fed ahead of time: the profile that expires first (never-renewed ones before all)."""
    w = planner.Waiting
    fresh = [w("x", State.FRESH, None, NOW + timedelta(hours=5)), w("y", State.FRESH, None, NOW)]
    assert planner.pick_code_target(fresh) == "y"
    assert planner.pick_code_target([*fresh, w("z", State.ERROR, None, None)]) == "z"
    assert planner.pick_code_target([]) is None
