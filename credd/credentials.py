"""The credentials value that flows from STS to the file and the socket. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def mask_key_id(key_id: str) -> str:
    """Show only the last four characters of an access key id: `****WXYZ`."""
    return "****" + key_id[-4:] if len(key_id) > 4 else "****"


def format_utc(when: datetime) -> str:
    """UTC ISO 8601 with a `Z`, to the second: `2026-11-26T08:00:00Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 time (`Z` or an offset); naive times are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A set of AWS credentials, immutable. Its repr never shows the secret or the token."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        expiry = format_utc(self.expires_at) if self.expires_at else None
        return f"Credentials({mask_key_id(self.access_key_id)}, expires_at={expiry})"

    __str__ = __repr__

    def is_valid_at(self, now: datetime) -> bool:
        """True when these credentials have not expired at `now` (long-term keys never do)."""
        return self.expires_at is None or self.expires_at > now

    def as_file_keys(self) -> dict[str, str | None]:
        """The keys credd writes into a managed section (None removes a key).

        `aws_security_token` is always removed: botocore prefers it over
        `aws_session_token`, so a stale one would shadow the new token.
        """
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "aws_security_token": None,
            "x_security_token_expires": format_utc(self.expires_at) if self.expires_at else None,
        }
