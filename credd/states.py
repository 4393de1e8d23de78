"""Closed sets shared by the daemon and credctl. Standard library only."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """How a profile's credentials are made."""

    MFA_SESSION = "mfa-session"  # STS GetSessionToken with an MFA code
    ROLE = "role"  # STS AssumeRole on a source profile


class State(StrEnum):
    """Where a profile stands, as `credctl status` shows it."""

    PENDING = "pending"  # not yet known
    FRESH = "fresh"
    REFRESHING = "refreshing"
    AWAITING_CODE = "awaiting-code"
    EXPIRED = "expired"
    ERROR = "error"
