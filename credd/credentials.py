"""The credentials value that flows from STS to the file and the socket. Standard library only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def mask_key_id(key_id: str) -> str:
    """Show only the last four characters of an access key id: `****WXYZ`."""
    return "****" + key_id[-4:] if len(key_id) > 4 else "****"


def format_utc(when: datetime) -> str:
    """UTC ISO 8601 with a `Z`, to the second: `2026-11-26T08:00:00Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_relative(delta: timedelta) -> str:
    """A span as people read it: `3h12m`, `45m`, `30s`; negative spans count as zero."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 time (`Z` or an offset); naive times are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Credentials:
    """A set of AWS credentials, immutable. Its repr never shows the secret or the token.

    A hand-written frozen value rather than a dataclass: `credctl` imports this module,
    and `dataclasses` (through `inspect`) was a third of credctl's start-up time
    (bench/RESULTS.md #2).
    """

    __slots__ = ("access_key_id", "expires_at", "secret_access_key", "session_token")

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: datetime | None

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "access_key_id", access_key_id)
        set_field(self, "secret_access_key", secret_access_key)
        set_field(self, "session_token", session_token)
        set_field(self, "expires_at", expires_at)

    def _fields(self) -> tuple[str, str, str | None, datetime | None]:
        return (self.access_key_id, self.secret_access_key, self.session_token, self.expires_at)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Credentials)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[type[Credentials], tuple[object, ...]]:
        return (Credentials, self._fields())  # copy and pickle, despite __setattr__

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Credentials are immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Credentials are immutable: cannot delete {name}")

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
