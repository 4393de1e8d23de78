"""The endpoint's tokens (credd/daemon/tokens.py): 256-bit, one profile each, memory only,
ended by revocation or their time-to-live."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from support.fakes import FakeClock

from credd.daemon.tokens import MAX_LIVE_TOKENS, PREFIX, SECRET_BYTES, TokenStore
from credd.errors import EndpointUnavailableError, Fault


@pytest.fixture
def clock() -> FakeClock:
    """The wall clock tokens expire on."""
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> TokenStore:
    """An empty store on the fake clock."""
    return TokenStore(clock=clock.now)


def test_a_token_carries_256_random_bits_and_grants_one_profile(store: TokenStore) -> None:
    """Each token is new randomness of at least 256 bits, and names the profile it grants."""
    assert SECRET_BYTES * 8 >= 256
    tokens = {store.mint("prod-admin", 3600)[0] for _ in range(50)}
    assert len(tokens) == 50
    token = next(iter(tokens))
    assert token.startswith(PREFIX)
    secret = token[len(PREFIX) + 12 :]
    assert len(base64.urlsafe_b64decode(secret + "=")) == SECRET_BYTES
    grant = store.check(token)
    assert grant is not None and grant.profile == "prod-admin"


def test_expired_revoked_and_altered_tokens_are_refused(
    store: TokenStore, clock: FakeClock
) -> None:
    """A token works until its ttl passes or it is revoked; any other string never does."""
    short, _ = store.mint("a", 60)
    long, grant = store.mint("b", 3600)
    assert grant.expires_at == clock.now() + timedelta(seconds=3600)
    clock.advance(61)
    assert store.check(short) is None
    assert store.check(long) is not None
    altered = long[:-1] + ("A" if long[-1] != "A" else "B")
    for wrong in (altered, long[:-1], long + "x", "", "credd_", long.upper(), "\ud800" * 61):
        assert store.check(wrong) is None
        assert store.revoke(wrong) is False
    assert store.revoke(long) is True
    assert store.check(long) is None
    assert store.revoke(long) is False, "revoking twice says it was no longer live"


def test_revoking_an_expired_token_says_it_was_not_live(
    store: TokenStore, clock: FakeClock
) -> None:
    """The answer to `endpoint-revoke` tells whether the token was still good."""
    token, _ = store.mint("a", 10)
    clock.advance(10)
    assert store.revoke(token) is False
    assert len(store) == 0


def test_the_store_keeps_no_token_text(store: TokenStore) -> None:
    """Only a digest of each secret is held: neither reprs nor the store's state show a token."""
    token, grant = store.mint("prod-admin", 3600)
    secret = token[len(PREFIX) + 12 :]
    held = repr(vars(store)) + repr(grant)
    assert secret not in held and token not in held
    assert "digest" not in repr(grant)


def test_live_tokens_are_capped_and_expired_ones_make_room(clock: FakeClock) -> None:
    """A runaway minter stops at the cap with ENDPOINT_UNAVAILABLE; expiry frees the places."""
    store = TokenStore(clock=clock.now, limit=3)
    for _ in range(3):
        store.mint("a", 60)
    with pytest.raises(EndpointUnavailableError) as caught:
        store.mint("a", 60)
    assert caught.value.fault == Fault.ENDPOINT_UNAVAILABLE
    assert "3 endpoint tokens are live" in caught.value.message
    clock.advance(60)
    store.mint("a", 60)
    assert len(store) == 1
    assert MAX_LIVE_TOKENS >= 1000


def test_a_repeated_grant_id_is_drawn_again(clock: FakeClock) -> None:
    """Two grants never share an id, even from a source of randomness that repeats."""
    draws = iter([b"\x01" * 9, b"\x02" * 32, b"\x01" * 9, b"\x03" * 9, b"\x04" * 32])
    store = TokenStore(clock=clock.now, random_bytes=lambda _n: next(draws))
    first, _ = store.mint("a", 60)
    second, _ = store.mint("b", 60)
    assert first[:18] != second[:18]
    assert store.check(first).profile == "a"  # type: ignore[union-attr]
    assert store.check(second).profile == "b"  # type: ignore[union-attr]
