"""The daemon's side of rotation (credd/daemon/rotations.py) with an in-memory IAM and a
fake clock: `rotate_every` judged from IAM's CreateDate, the MFA session held signing
the calls, two keys blocking with the reason in status, nothing rotated before its time;
and the rotator's own steps (credd/rotation/rotate.py) against a file."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.fakes import START, FakeClock

from credd.adapters.iam import AccessKeyInfo, IamError, NewKey, NoSuchKeyError
from credd.credentials import Credentials, mask_key_id
from credd.daemon.rotations import Rotations
from credd.policy import Policy, Profile
from credd.rotation.journal import Journal
from credd.rotation.rotate import RotationBlocked, Rotator
from credd.states import Kind

DAY = 86400
USER = "alice"
ARN = f"arn:aws:iam::123456789012:user/team/{USER}"


class MemoryIam:
    """IAM for one user: keys with their CreateDate, and who signed each call."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[str, str, datetime]] = {}  # id -> secret, status, created
        self.signers: list[tuple[str, str]] = []  # (operation, signing key id)
        self.session_ids: set[str] = set()

    def add(self, age_days: float) -> Credentials:
        key_id = "AKIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        self.keys[key_id] = (secret, "Active", self.clock.now() - timedelta(days=age_days))
        return Credentials(key_id, secret)

    def _check(self, operation: str, signer: Credentials) -> None:
        self.signers.append((operation, signer.access_key_id))
        if signer.access_key_id in self.session_ids:
            return
        found = self.keys.get(signer.access_key_id)
        if found is None or found[0] != signer.secret_access_key or found[1] != "Active":
            raise IamError(f"{operation}: InvalidClientTokenId")

    def caller_arn(self, keys: Credentials, region: str) -> str:
        self._check("GetCallerIdentity", keys)
        return ARN

    def list_keys(self, signer: Credentials, region: str, user: str) -> list[AccessKeyInfo]:
        self._check("ListAccessKeys", signer)
        assert user == USER
        return [AccessKeyInfo(k, v[1], v[2]) for k, v in self.keys.items()]

    def create_key(self, signer: Credentials, region: str, user: str) -> NewKey:
        self._check("CreateAccessKey", signer)
        assert len(self.keys) < 2, "IAM holds at most two keys"
        made = self.add(0)
        return NewKey(made.access_key_id, made.secret_access_key, self.clock.now())

    def deactivate_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        self._check("UpdateAccessKey", signer)
        if key_id not in self.keys:
            raise NoSuchKeyError(key_id)
        secret, _, created = self.keys[key_id]
        self.keys[key_id] = (secret, "Inactive", created)

    def delete_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        self._check("DeleteAccessKey", signer)
        if self.keys.pop(key_id, None) is None:
            raise NoSuchKeyError(key_id)


def profile(rotate_every: int | None = 90 * DAY) -> Profile:
    return Profile(
        name="session-alice",
        kind=Kind.MFA_SESSION,
        source_profile="default",
        mfa_serial="arn:aws:iam::123456789012:mfa/alice",
        role_arn=None,
        role_session_name=None,
        external_id=None,
        duration=43200,
        requested_duration=43200,
        refresh_before=900,
        region="us-east-1",
        code_command=None,
        notify=None,
        source_is_managed=False,
        rotate_every=rotate_every,
    )


class World:
    def __init__(self, tmp_path: Path, age_days: float, session: Credentials | None) -> None:
        self.clock = FakeClock(START)
        self.iam = MemoryIam(self.clock)
        self.old = self.iam.add(age_days)
        self.credentials = tmp_path / "credentials"
        self.credentials.write_text(
            "# mine\n[default]\n"
            f"aws_access_key_id = {self.old.access_key_id}\n"
            f"aws_secret_access_key = {self.old.secret_access_key}\nregion = eu-west-1\n"
        )
        self.credentials.chmod(0o600)
        self.journal = Journal(tmp_path / "state" / "rotation.json")
        self.rotator = Rotator(
            iam=self.iam,
            journal=self.journal,
            credentials_file=self.credentials,
            keyring=None,
            clock=self.clock.now,
            sleep=lambda _: None,
            env={},
        )
        if session is not None:
            self.iam.session_ids.add(session.access_key_id)
        self.session = session
        self.rotations = Rotations(
            self.rotator, now=self.clock.now, in_thread=_in_thread, session_for=self.session_for
        )

    def session_for(self, source: str) -> Credentials | None:
        return self.session if source == "default" else None

    def policy(self, rotate_every: int | None = 90 * DAY) -> Policy:
        return Policy(
            path=Path("policy.yaml"),
            credentials_file=self.credentials,
            profiles=(profile(rotate_every),),
        )

    async def settle(self) -> None:
        for _ in range(3):
            tasks = [s.task for s in self.rotations._keys.values() if s.task is not None]
            if self.rotations._reading is not None:
                tasks.append(self.rotations._reading)  # type: ignore[arg-type]
            if tasks:
                await asyncio.wait(tasks)
            await asyncio.sleep(0)

    def held_id(self) -> str:
        return self.rotator.held("default")[0].access_key_id


def _in_thread(call: Callable[[], Any]) -> Any:
    return asyncio.get_running_loop().run_in_executor(None, call)


SESSION = Credentials("ASIASESSION000000001", "sessionSecret", "token", START + timedelta(hours=1))


async def test_a_key_older_than_rotate_every_is_rotated_with_the_session_held(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, age_days=100, session=SESSION)
    world.rotations.apply(world.policy())
    await world.rotations.start()
    world.rotations.tick()  # first, IAM is asked the key's age
    await world.settle()
    (key,) = world.rotations.status()
    assert key["key_id"] == mask_key_id(world.old.access_key_id)
    assert key["rotation"] == "idle"
    assert world.held_id() == world.old.access_key_id  # not yet: one step at a time
    world.rotations.tick()  # due: rotated
    await world.settle()
    new_id = world.held_id()
    assert new_id != world.old.access_key_id
    assert list(world.iam.keys) == [new_id]
    assert "# mine\n" in world.credentials.read_text()
    assert "region = eu-west-1" in world.credentials.read_text()
    signed = dict(world.iam.signers)
    assert signed["CreateAccessKey"] == SESSION.access_key_id
    assert signed["DeleteAccessKey"] == SESSION.access_key_id
    (key,) = world.rotations.status()
    assert key["key_id"] == mask_key_id(new_id)
    assert key["rotation"] == "idle" and key["reason"] is None
    assert key["next_rotation"] is not None
    assert world.journal.read().open == {}
    text = world.journal.path.read_text()
    assert world.old.secret_access_key not in text
    assert (world.journal.path.stat().st_mode & 0o777) == 0o600


async def test_a_young_key_is_left_alone_and_shows_its_next_rotation(tmp_path: Path) -> None:
    world = World(tmp_path, age_days=10, session=SESSION)
    world.rotations.apply(world.policy())
    await world.rotations.start()
    world.rotations.tick()
    await world.settle()
    world.rotations.tick()
    await world.settle()
    assert list(world.iam.keys) == [world.old.access_key_id]
    (key,) = world.rotations.status()
    created = datetime.fromisoformat(key["created_at"].replace("Z", "+00:00"))
    due = datetime.fromisoformat(key["next_rotation"].replace("Z", "+00:00"))
    assert due - created == timedelta(days=90)
    assert "CreateAccessKey" not in dict(world.iam.signers)


async def test_without_rotate_every_iam_is_not_asked(tmp_path: Path) -> None:
    world = World(tmp_path, age_days=400, session=SESSION)
    world.rotations.apply(world.policy(None))
    world.rotations.tick()
    await world.settle()
    assert world.iam.signers == []
    (key,) = world.rotations.status()
    assert key["rotate_every"] is None and key["next_rotation"] is None


async def test_two_keys_block_it_and_status_names_the_other_key(tmp_path: Path) -> None:
    world = World(tmp_path, age_days=100, session=SESSION)
    other = world.iam.add(5)
    world.rotations.apply(world.policy())
    for _ in range(3):
        world.rotations.tick()
        await world.settle()
    assert set(world.iam.keys) == {world.old.access_key_id, other.access_key_id}
    assert "CreateAccessKey" not in dict(world.iam.signers)
    (key,) = world.rotations.status()
    assert key["rotation"] == "blocked"
    assert mask_key_id(other.access_key_id) in key["reason"]
    assert other.access_key_id not in key["reason"]
    with pytest.raises(RotationBlocked, match="already has two access keys"):
        await world.rotations.rotate_now("session-alice", world.policy())
    assert world.journal.read().open == {}


async def test_credctl_rotate_rotates_a_young_key_now_and_without_a_session_signs_with_keys(
    tmp_path: Path,
) -> None:
    """No session held: the old key signs up to the proof, the new one after (the old one
    is being switched off)."""
    world = World(tmp_path, age_days=1, session=None)
    world.rotations.apply(world.policy())
    result = await world.rotations.rotate_now("default", world.policy())
    new_id = world.held_id()
    assert result["new_key_id"] == mask_key_id(new_id)
    assert result["old_key_id"] == mask_key_id(world.old.access_key_id)
    signed = dict(world.iam.signers)
    assert signed["CreateAccessKey"] == world.old.access_key_id
    assert signed["UpdateAccessKey"] == new_id
    assert list(world.iam.keys) == [new_id]


async def test_an_unknown_name_is_refused(tmp_path: Path) -> None:
    world = World(tmp_path, age_days=1, session=None)
    world.rotations.apply(world.policy())
    with pytest.raises(Exception, match="no profile of the policy uses long-term keys of nope"):
        await world.rotations.rotate_now("nope", world.policy())


def test_a_new_key_iam_refuses_for_a_while_is_proven_after_retries(tmp_path: Path) -> None:
    """IAM is eventually consistent: GetCallerIdentity with the new key is retried."""
    world = World(tmp_path, age_days=1, session=SESSION)
    refusals = iter([True, True, False])
    original = world.iam.caller_arn
    slept: list[float] = []
    world.rotator._sleep = slept.append

    def flaky(keys: Credentials, region: str) -> str:
        if keys.access_key_id != world.old.access_key_id and next(refusals, False):
            raise IamError("InvalidClientTokenId")
        return original(keys, region)

    world.iam.caller_arn = flaky  # type: ignore[method-assign]
    rotated = world.rotator.rotate("default", SESSION, "us-east-1")
    assert len(slept) == 2
    assert list(world.iam.keys) == [rotated.new_key_id]


def test_a_new_key_that_never_works_leaves_the_journal_open_for_recovery(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, age_days=1, session=SESSION)
    original = world.iam.caller_arn

    def refusing(keys: Credentials, region: str) -> str:
        if keys.access_key_id != world.old.access_key_id:
            raise IamError("InvalidClientTokenId")
        return original(keys, region)

    world.iam.caller_arn = refusing  # type: ignore[method-assign]
    with pytest.raises(IamError, match="does not work yet"):
        world.rotator.rotate("default", SESSION, "us-east-1")
    entry = world.journal.read().open["default"]
    assert entry.step == "stored"
    assert world.old.access_key_id in world.iam.keys  # the old key is not touched
    world.iam.caller_arn = original  # type: ignore[method-assign]
    done = world.rotator.recover("default", SESSION, "us-east-1")
    assert done is not None and done.startswith("finished the rotation of default")
    assert list(world.iam.keys) == [world.held_id()]
    assert world.journal.read().open == {}


async def test_a_journal_credd_did_not_write_does_not_stop_the_daemon(tmp_path: Path) -> None:
    world = World(tmp_path, age_days=1, session=SESSION)
    world.journal.path.parent.mkdir(parents=True)
    world.journal.path.write_text("not json")
    world.rotations.apply(world.policy())
    await world.rotations.start()
    (key,) = world.rotations.status()
    assert "is not a rotation journal credd wrote; move it aside" in key["reason"]
    assert key["rotation"] == "failed"


async def test_a_key_rotated_in_the_foreground_shows_in_status_at_the_next_beat(
    tmp_path: Path,
) -> None:
    """`credd keys rotate` beside the daemon: the journal says so, the daemon shows it."""
    world = World(tmp_path, age_days=10, session=SESSION)
    world.rotations.apply(world.policy())
    world.rotations.tick()
    await world.settle()
    rotated = world.rotator.rotate("default", SESSION, "us-east-1")  # as credd keys rotate
    world.rotations.tick()
    await world.settle()
    (key,) = world.rotations.status()
    assert key["key_id"] == mask_key_id(rotated.new_key_id)
