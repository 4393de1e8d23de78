"""The local endpoint's tokens: each one lets its bearer read one profile's credentials.

Tokens are minted over the control socket (so only the user's own uid can have one),
live in the daemon's memory only, and end when revoked (`credctl exec`'s command ended)
or when their time-to-live passes. A token is `credd_`, 12 characters that name its
grant (not secret), and 43 that are its secret: 32 random bytes, 256 bits. The store
keeps only a SHA-256 digest of each secret, so even the daemon's memory does not give a
live token back, and compares a presented secret's digest with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from credd.errors import EndpointUnavailableError

PREFIX = "credd_"
GRANT_ID_BYTES = 9  # 12 base64url characters
SECRET_BYTES = 32  # 256 bits; 43 base64url characters
TOKEN_LENGTH = len(PREFIX) + 12 + 43
# A runaway script that mints tokens and never revokes them stops here, not at memory's end.
MAX_LIVE_TOKENS = 4096


@dataclass(frozen=True)
class Grant:
    """What one token allows: reading `profile`'s credentials until `expires_at`."""

    profile: str
    expires_at: datetime
    digest: bytes = field(repr=False)  # SHA-256 of the token's secret part


class TokenStore:
    """The live tokens. Owned by the event loop; `clock` gives the wall clock (aware UTC)."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        limit: int = MAX_LIVE_TOKENS,
    ) -> None:
        self._clock = clock
        self._random_bytes = random_bytes
        self._limit = limit
        self._grants: dict[str, Grant] = {}

    def __len__(self) -> int:
        return len(self._grants)

    def mint(self, profile: str, ttl_seconds: int) -> tuple[str, Grant]:
        """A new token for `profile`, valid for `ttl_seconds`; the token is returned only here."""
        self._forget_expired()
        if len(self._grants) >= self._limit:
            raise EndpointUnavailableError(
                f"{self._limit} endpoint tokens are live already; end some `credctl exec` "
                "commands, or wait for their --ttl to pass"
            )
        grant_id = _b64(self._random_bytes(GRANT_ID_BYTES))
        while grant_id in self._grants:  # 72 random bits: only a broken `random_bytes` repeats
            grant_id = _b64(self._random_bytes(GRANT_ID_BYTES))
        secret = _b64(self._random_bytes(SECRET_BYTES))
        grant = Grant(
            profile=profile,
            expires_at=self._clock() + timedelta(seconds=ttl_seconds),
            digest=_digest(secret),
        )
        self._grants[grant_id] = grant
        return PREFIX + grant_id + secret, grant

    def check(self, presented: str) -> Grant | None:
        """The grant of a live token; None for anything else (unknown, revoked, expired)."""
        found = self._find(presented)
        if found is None:
            return None
        grant_id, grant = found
        if grant.expires_at <= self._clock():
            del self._grants[grant_id]
            return None
        return grant

    def revoke(self, presented: str) -> bool:
        """End a token now; False when it was not live."""
        found = self._find(presented)
        if found is None:
            return False
        del self._grants[found[0]]
        return found[1].expires_at > self._clock()

    def _find(self, presented: str) -> tuple[str, Grant] | None:
        if len(presented) != TOKEN_LENGTH or not presented.startswith(PREFIX):
            return None
        grant_id, secret = presented[len(PREFIX) : len(PREFIX) + 12], presented[len(PREFIX) + 12 :]
        grant = self._grants.get(grant_id)
        # The id only names the grant; the secret decides, compared in constant time.
        if grant is None or not hmac.compare_digest(grant.digest, _digest(secret)):
            return None
        return grant_id, grant

    def _forget_expired(self) -> None:
        now = self._clock()
        for grant_id in [g for g, grant in self._grants.items() if grant.expires_at <= now]:
            del self._grants[grant_id]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
