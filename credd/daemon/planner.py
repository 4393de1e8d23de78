"""Refresh planning: pure functions of the profiles' states and `now`.

Nothing here does I/O or reads a clock; the daemon passes `now` in, so a
12-hour schedule is tested in milliseconds with a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from credd.credentials import Credentials, parse_utc
from credd.states import State

# AWS's floor for both GetSessionToken and AssumeRole.
MIN_STS_DURATION = 900
# Role chaining: a role assumed with session credentials lasts at most an hour.
CHAINED_ROLE_MAX = 3600
# Backoff for retryable STS failures: 5 s, 10 s, 20 s ... capped at 5 minutes, with full jitter
# in the upper half so that many profiles failing together do not retry in step.
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0
# A renewal is never planned sooner than this after the credentials were issued, so a
# duration shorter than refresh_before cannot become a renewal loop.
MIN_LIFETIME_FRACTION = 0.5


def refresh_at(expires_at: datetime, refresh_before: int, issued_at: datetime) -> datetime:
    """When to renew: `refresh_before` ahead of expiry, but not in the first half of the life."""
    planned = expires_at - timedelta(seconds=refresh_before)
    floor = issued_at + (expires_at - issued_at) * MIN_LIFETIME_FRACTION
    return max(planned, floor)


def role_duration(requested: int, *, source: Credentials | None, now: datetime) -> int | None:
    """The duration to ask for a role, capped so that it never outlives a session source.

    `source` is the managed session the role is chained on, or None for long-term keys.
    None when the source has less left than AWS's 15-minute floor: the role would
    outlive it, so it waits to be renewed right after its source.
    """
    if source is None or source.expires_at is None:
        return requested
    left = int((source.expires_at - now).total_seconds())
    if left < MIN_STS_DURATION:
        return None
    return min(requested, CHAINED_ROLE_MAX, left)


def backoff_delay(attempt: int, *, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, jittered."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


def credentials_from_section(section: Mapping[str, str] | None) -> Credentials | None:
    """Session credentials credd wrote earlier, read back from a managed section.

    Only a complete set with a known expiry counts: anything else is renewed.
    """
    if not section:
        return None
    key_id = section.get("aws_access_key_id")
    secret = section.get("aws_secret_access_key")
    token = section.get("aws_session_token")
    expires = section.get("x_security_token_expires")
    if not (key_id and secret and token and expires):
        return None
    try:
        expires_at = parse_utc(expires)
    except ValueError:
        return None
    return Credentials(key_id, secret, token, expires_at)


def long_term_credentials(section: Mapping[str, str] | None) -> Credentials | None:
    """The keys of an unmanaged source profile (long-term, or a session someone else keeps)."""
    if not section:
        return None
    key_id = section.get("aws_access_key_id")
    secret = section.get("aws_secret_access_key")
    if not (key_id and secret):
        return None
    token = section.get("aws_session_token") or section.get("aws_security_token")
    return Credentials(key_id, secret, token or None)


@dataclass(frozen=True)
class Waiting:
    """What the code-target choice needs to know of one profile that takes a code."""

    name: str
    state: State
    waiting_since: datetime | None
    expires_at: datetime | None


def pick_code_target(candidates: Iterable[Waiting]) -> str | None:
    """Where a code fed without `--profile` goes (SPEC.md `credctl token`).

    The profile that has waited longest for a code; if none waits, the one that
    expires soonest (never-renewed first), so a code can be fed ahead of time.
    """
    pool = [c for c in candidates if c.state is not State.REFRESHING]
    waiting = [c for c in pool if c.state is State.AWAITING_CODE and c.waiting_since]
    if waiting:
        return min(waiting, key=lambda c: (c.waiting_since, c.name)).name
    if not pool:
        return None
    # Never-renewed profiles (no expiry known) sort first.
    return min(pool, key=lambda c: (c.expires_at.timestamp() if c.expires_at else 0.0, c.name)).name
