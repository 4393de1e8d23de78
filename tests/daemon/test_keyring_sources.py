"""The daemon with sources' keys in the keyring (credd/daemon/core.py `_long_term_keys`, the
machine's `keys-unavailable`, `keys-ready` and `check-keys`), on fakes and a fake clock:
a locked keyring puts only the profiles that need it in `error`, and they recover by
themselves once it is unlocked."""

from __future__ import annotations

from support.fakes import LONG_TERM, MemoryWriter, Rig, make_policy, make_rig, settle

from credd.adapters.keyring import Keyring, StoredKey
from credd.errors import KeyringError
from credd.states import State

POLICY = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
  ops:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops
    duration: 1h
  plain:
    source_profile: filed
    role_arn: arn:aws:iam::123456789012:role/Plain
    duration: 1h
"""
KEYRING_ID = "AKIAKEYRINGSOURCE001"


class FakeKeyring(Keyring):
    """Holds `default`'s keys; can be locked."""

    def __init__(self) -> None:
        super().__init__()
        self.locked = False
        self.reads = 0
        self.held = {"default"}

    def get(self, profile: str) -> StoredKey | None:
        self.reads += 1
        if self.locked:
            raise KeyringError(f"cannot read credd/{profile} in the keyring: the keyring is locked")
        return StoredKey(KEYRING_ID, "keyring-secret") if profile in self.held else None

    def profiles(self) -> frozenset[str] | None:
        return None  # no listing: asked profile by profile, as on the Keychain


async def started(keyring: FakeKeyring) -> Rig:
    # `default` has no keys in the file (they were moved); `filed` keeps its own there.
    writer = MemoryWriter({"default": {"region": "eu-west-1"}, "filed": dict(LONG_TERM)})
    rig = make_rig(POLICY, writer)
    rig.daemon._keyring = keyring
    rig.daemon._policy = make_policy(POLICY, writer.sections, in_keyring={"default"}.__contains__)
    await rig.daemon.start()
    await settle()
    return rig


def entry_of(rig: Rig, name: str) -> tuple[State, str | None]:
    entry = rig.daemon.entry(name)
    assert entry is not None
    return entry.state, entry.last_error


async def test_sources_are_read_from_the_keyring_first() -> None:
    """The role is renewed with the keyring's key; a source kept in the file still works."""
    keyring = FakeKeyring()
    rig = await started(keyring)
    sources = {c.role_arn: c.profile_key for c in rig.sts.calls}
    assert sources["arn:aws:iam::123456789012:role/Ops"] == KEYRING_ID
    assert sources["arn:aws:iam::123456789012:role/Plain"] == LONG_TERM["aws_access_key_id"]
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    assert rig.sts.calls[-1].profile_key == KEYRING_ID
    assert entry_of(rig, "session-x")[0] is State.FRESH


async def test_a_locked_keyring_blocks_only_its_profiles_and_they_recover_by_themselves() -> None:
    """Locked at start: `ops` is `error` with the reason and a retry; `plain` (file) is
    fresh. Unlocked: the retry renews `ops` with no restart and no request."""
    keyring = FakeKeyring()
    keyring.locked = True
    rig = await started(keyring)
    state, error = entry_of(rig, "ops")
    assert state is State.ERROR
    assert error is not None and "the keyring is locked" in error and "trying again at" in error
    assert entry_of(rig, "plain")[0] is State.FRESH
    ops = rig.daemon.entry("ops")
    assert ops is not None and ops.next_refresh_at is not None

    rig.clock.advance(60)
    await rig.scheduler.run_due()
    await settle()
    assert entry_of(rig, "ops")[0] is State.ERROR  # still locked: tried again, planned again

    keyring.locked = False
    rig.clock.advance(600)
    await rig.scheduler.run_due()
    await settle()
    assert entry_of(rig, "ops") == (State.FRESH, None)


async def test_a_code_is_not_used_while_the_keys_cannot_be_read() -> None:
    """A code fed while the keyring is locked reaches no one (nothing sent to AWS); the
    profile retries reading the keys by itself and asks for a code only once it can."""
    keyring = FakeKeyring()
    rig = await started(keyring)
    keyring.locked = True
    calls = len(rig.sts.calls)
    try:
        await rig.daemon.feed_code("123456", "session-x")
    except KeyringError as error:
        assert error.message.endswith("the code was not used")
    else:
        raise AssertionError("the code was taken while the keyring was locked")
    await settle()
    assert len(rig.sts.calls) == calls
    state, error = entry_of(rig, "session-x")
    entry = rig.daemon.entry("session-x")
    assert entry is not None and not entry.asked and entry.next_refresh_at is not None
    assert state is State.ERROR and error is not None and "locked" in error

    rig.clock.advance(600)
    await rig.scheduler.run_due()
    await settle()
    assert entry_of(rig, "session-x")[0] is State.ERROR  # checked, still locked: no request
    assert not entry.asked

    keyring.locked = False
    rig.clock.advance(3600)
    await rig.scheduler.run_due()
    await settle()
    assert entry_of(rig, "session-x") == (State.AWAITING_CODE, None)
    assert entry.asked
    await rig.daemon.feed_code("654321", "session-x")
    await settle()
    assert entry_of(rig, "session-x")[0] is State.FRESH


async def test_keys_moved_into_the_keyring_while_credd_runs_block_nothing() -> None:
    """`credd keys import default` with the daemon running: the key lines leave the file,
    the file check asks the keyring, and no profile of `default` is blocked; renewals use
    the keyring's key from then on. Keys in neither place do block, with the fix named."""
    keyring = FakeKeyring()
    keyring.held = set()
    writer = MemoryWriter({"default": dict(LONG_TERM), "filed": dict(LONG_TERM)})
    rig = make_rig(POLICY, writer)
    rig.daemon._keyring = keyring
    await rig.daemon.start()
    await settle()
    assert entry_of(rig, "ops") == (State.FRESH, None)

    keyring.held = {"default"}  # stored, read back; then the two key lines removed
    writer.update({"default": {"aws_access_key_id": None, "aws_secret_access_key": None}})
    rig.daemon.tick()
    await settle()
    assert rig.daemon.blocked("ops") is None and rig.daemon.blocked("session-x") is None
    assert entry_of(rig, "ops") == (State.FRESH, None)
    await rig.daemon.refresh(["ops"])
    await settle()
    assert rig.sts.calls[-1].profile_key == KEYRING_ID

    keyring.held = set()  # `credd keys remove default`, and the file holds none either
    writer.overwrite("default", {"region": "eu-west-1"})
    rig.daemon.tick()
    await settle()
    problem = rig.daemon.blocked("ops")
    assert problem is not None and "has no aws_access_key_id" in problem
    assert "`credd keys add`" in problem
    assert entry_of(rig, "ops") == (State.ERROR, problem)
