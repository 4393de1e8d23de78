"""Rotating a long-term access key, crash-safe: SPEC.md "Long-term keys", the six steps.

1. ListAccessKeys: with two keys already, nothing is created (`RotationBlocked`,
   naming the other key, masked);
2. the intent goes into the journal (key ids only), then CreateAccessKey;
3. the new key is stored where the old one lives (the keyring, or the credentials
   file through the safe writer while it still holds the old key) and read back;
4. the new key is proven (GetCallerIdentity with it, retried: IAM is eventually
   consistent);
5. the old key is made Inactive, then deleted;
6. the journal entry is closed.

`recover` finishes or undoes a rotation cut off at any step (a crash, kill -9, the
network): whatever the store holds decides. Holding the new key, the old one is
deleted; holding the old one, every key IAM lists that was not there before the
intent (created, its secret never stored) is deleted. Either way the user ends
with exactly one key, the one credd holds, and the journal is closed.

IAM calls are signed with `session` (the MFA session held for that source; IAM
policies often demand MFA) or, without one, with the key itself (after step 4,
with the new key, since the old one is being switched off). The IAM user is
found with GetCallerIdentity on the long-term key.

Every call here blocks (IAM, the keyring, the file): the daemon runs them in its
thread pool. `CREDD_TEST_PAUSE_AT=STEP` makes the process stop after that step
(for the tests' `kill -9`), saying so on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from credd.adapters.iam import (
    AccessKeyInfo,
    IamClient,
    IamError,
    IamTransientError,
    NewKey,
    NoSuchKeyError,
    user_name_from_arn,
)
from credd.adapters.keyring import Keyring, long_term_keys
from credd.credentials import Credentials, mask_key_id
from credd.errors import BadInputError, CreddError, KeyringError
from credd.files.writer import CredentialsWriter
from credd.rotation.journal import Journal, KeyRecord, OpenRotation, stamp

log = logging.getLogger(__name__)

PAUSE_VARIABLE = "CREDD_TEST_PAUSE_AT"
# The places a test may stop a rotation at: after each step, and between
# CreateAccessKey's answer and the journal's record of it.
PAUSE_POINTS = ("intent", "create-sent", "created", "stored", "verified", "deactivated", "deleted")
# Proving the new key: IAM may refuse it for some seconds after CreateAccessKey.
PROVE_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)

_KEY_ID = "aws_access_key_id"
_SECRET = "aws_secret_access_key"
_TOKENS = ("aws_session_token", "aws_security_token")


class RotationBlocked(CreddError):
    """The rotation cannot be made as things stand (two keys present): nothing was created."""


@dataclass(frozen=True)
class Rotated:
    """What a rotation did (key ids masked when shown)."""

    profile: str
    old_key_id: str
    new_key_id: str
    where: str

    def __repr__(self) -> str:
        return (
            f"Rotated({self.profile}, {mask_key_id(self.old_key_id)} ->"
            f" {mask_key_id(self.new_key_id)}, {self.where})"
        )

    def describe(self) -> str:
        """One line for people."""
        where = "the keyring" if self.where == "keyring" else "the credentials file"
        return (
            f"rotated the key of {self.profile}: {mask_key_id(self.old_key_id)} deleted,"
            f" {mask_key_id(self.new_key_id)} now in {where}"
        )


class Rotator:
    """Rotates and recovers the long-term keys of profiles."""

    def __init__(
        self,
        *,
        iam: IamClient,
        journal: Journal,
        credentials_file: Path,
        keyring: Keyring | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        env: Mapping[str, str] = os.environ,
        prove_delays: tuple[float, ...] = PROVE_DELAYS,
    ) -> None:
        self.iam = iam
        self.journal = journal
        self.credentials_file = credentials_file
        self.keyring = keyring
        self._clock = clock
        self._sleep = sleep
        self._pause_at = env.get(PAUSE_VARIABLE) or None
        self._prove_delays = prove_delays

    def __repr__(self) -> str:
        return f"Rotator({self.journal.path}, {self.credentials_file})"

    # ------------------------------------------------------------------ the keys held

    def held(self, profile: str) -> tuple[Credentials, str]:
        """The key credd holds for `profile` and where (`keyring` or `file`)."""
        in_file = _file_keys(CredentialsWriter(self.credentials_file).read().get(profile))
        places = f"the keyring or {self.credentials_file}"
        try:
            found = long_term_keys(
                self.keyring, profile, Credentials(*in_file) if in_file is not None else None
            )
        except KeyringError:
            if self.keyring is None or not self.keyring.absent:
                raise  # locked: the keys may well be there
            found, places = None, f"{self.credentials_file} (and no keyring is available)"
        if found is None:
            raise BadInputError(f"profile {profile} has no long-term keys in {places}")
        return found

    def user_of(self, keys: Credentials, region: str) -> str:
        """The IAM user who owns `keys` (GetCallerIdentity)."""
        arn = self.iam.caller_arn(keys, region)
        user = user_name_from_arn(arn)
        if user is None:
            raise CreddError(
                f"key {mask_key_id(keys.access_key_id)} belongs to {arn or 'nobody'}, not an IAM"
                " user: only an IAM user's access key can be rotated"
            )
        return user

    # ------------------------------------------------------------------ age

    def check_age(self, profile: str, session: Credentials | None, region: str) -> KeyRecord:
        """Ask IAM when the key held was created; remembered in the journal."""
        with self.journal.locked():
            keys, _ = self.held(profile)
            user = self.user_of(keys, region)
            listed = self.iam.list_keys(session or keys, region, user)
            return self._remember(profile, keys.access_key_id, listed)

    def _remember(self, profile: str, key_id: str, listed: list[AccessKeyInfo]) -> KeyRecord:
        previous = self.journal.record(profile)
        mine = next((k for k in listed if k.access_key_id == key_id), None)
        others = [k for k in listed if k.access_key_id != key_id]
        blocked = _two_keys_reason(profile, key_id, others[0].access_key_id) if others else None
        record = KeyRecord(
            key_id=key_id,
            created_at=stamp(mine.created_at) if mine else None,
            checked_at=stamp(self._clock()),
            blocked=blocked,
            rotated_at=previous.rotated_at if previous and previous.key_id == key_id else None,
        )
        self.journal.remember(profile, record)
        return record

    # ------------------------------------------------------------------ rotation

    def rotate(self, profile: str, session: Credentials | None, region: str) -> Rotated:
        """Rotate `profile`'s key now (after finishing any rotation of it cut off before)."""
        with self.journal.locked():
            self._recover_locked(profile, session, region)
            old, where = self.held(profile)
            user = self.user_of(old, region)
            signer = session or old
            listed = self.iam.list_keys(signer, region, user)
            if old.access_key_id not in {k.access_key_id for k in listed}:
                raise CreddError(
                    f"IAM does not list key {mask_key_id(old.access_key_id)} of {profile} among"
                    f" the keys of {user}: credd will not rotate a key it cannot see"
                )
            record = self._remember(profile, old.access_key_id, listed)
            if record.blocked is not None:
                raise RotationBlocked(record.blocked)
            self.journal.begin(
                OpenRotation(
                    profile=profile,
                    user=user,
                    where=where,
                    old_key_id=old.access_key_id,
                    before=tuple(k.access_key_id for k in listed),
                    started_at=stamp(self._clock()),
                )
            )
            log.info("%s: rotating key %s of %s", profile, mask_key_id(old.access_key_id), user)
            self._pause("intent")
            new = self.iam.create_key(signer, region, user)
            self._pause("create-sent")
            self.journal.advance(profile, "created", new_key_id=new.access_key_id)
            self._pause("created")
            self._store(profile, where, old, new)
            self.journal.advance(profile, "stored")
            self._pause("stored")
            self._prove(new.credentials(), user, region)
            self.journal.advance(profile, "verified")
            self._pause("verified")
            self._retire_old(profile, session or new.credentials(), region, user, old)
            created = new.created_at or self._clock()
            now = stamp(self._clock())
            self.journal.close(
                profile, KeyRecord(new.access_key_id, stamp(created), now, None, now)
            )
            log.info(
                "%s: key %s replaced by %s",
                profile,
                mask_key_id(old.access_key_id),
                mask_key_id(new.access_key_id),
            )
            return Rotated(profile, old.access_key_id, new.access_key_id, where)

    def _store(self, profile: str, where: str, old: Credentials, new: NewKey) -> None:
        if where == "keyring":
            assert self.keyring is not None
            self.keyring.put(profile, new.access_key_id, new.secret_access_key)
            return
        writer = CredentialsWriter(self.credentials_file)

        def still_old(sections: Mapping[str, Mapping[str, str]]) -> bool:
            held = _file_keys(sections.get(profile))
            if held is None or held[0] != old.access_key_id:
                raise CreddError(
                    f"{self.credentials_file}: the key of {profile} changed during its rotation;"
                    " the new key was not written"
                )
            return False

        writer.update(
            {profile: {_KEY_ID: new.access_key_id, _SECRET: new.secret_access_key}},
            check=still_old,
        )
        back = _file_keys(writer.read().get(profile))
        if back != (new.access_key_id, new.secret_access_key):
            raise CreddError(f"{self.credentials_file} did not read back the new key of {profile}")

    def _prove(self, keys: Credentials, user: str, region: str) -> None:
        """GetCallerIdentity with the new key answers the same user, retried a while."""
        failure = ""
        for delay in (0.0, *self._prove_delays):
            if delay:
                self._sleep(delay)
            try:
                arn = self.iam.caller_arn(keys, region)
            except IamError as error:
                failure = error.message
                continue
            if user_name_from_arn(arn) == user:
                return
            failure = f"it answers for {arn}, not {user}"
        raise IamTransientError(
            f"the new key {mask_key_id(keys.access_key_id)} does not work yet: {failure}"
        )

    def _retire_old(
        self, profile: str, signer: Credentials, region: str, user: str, old: Credentials
    ) -> None:
        try:
            self.iam.deactivate_key(signer, region, user, old.access_key_id)
            self.journal.advance(profile, "deactivated")
            self._pause("deactivated")
            self.iam.delete_key(signer, region, user, old.access_key_id)
        except NoSuchKeyError:
            pass  # already gone (a recovery, or the person deleted it)
        self.journal.advance(profile, "deleted")
        self._pause("deleted")

    # ------------------------------------------------------------------ recovery

    def open_profiles(self) -> list[str]:
        """The profiles with a rotation cut off."""
        return sorted(self.journal.read().open)

    def recover(self, profile: str, session: Credentials | None, region: str) -> str | None:
        """Finish or undo `profile`'s cut-off rotation; what was done, or None if none was
        open."""
        with self.journal.locked():
            return self._recover_locked(profile, session, region)

    def _recover_locked(self, profile: str, session: Credentials | None, region: str) -> str | None:
        entry = self.journal.open_entry(profile)
        if entry is None:
            return None
        held, _ = self.held(profile)
        user = entry.user
        if held.access_key_id == entry.new_key_id:
            # The new key was stored: prove it, then the old one goes.
            self._prove(held, user, region)
            signer = session or held
            ids = {k.access_key_id for k in self.iam.list_keys(signer, region, user)}
            if entry.old_key_id in ids:
                old = Credentials(entry.old_key_id, "")
                try:
                    self.iam.deactivate_key(signer, region, user, old.access_key_id)
                    self.iam.delete_key(signer, region, user, old.access_key_id)
                except NoSuchKeyError:
                    pass
            done = (
                f"finished the rotation of {profile}: {mask_key_id(entry.old_key_id)} deleted,"
                f" {mask_key_id(held.access_key_id)} kept"
            )
            now = stamp(self._clock())
            self.journal.close(profile, KeyRecord(held.access_key_id, None, now, None, now))
        elif held.access_key_id == entry.old_key_id:
            # The new key never reached the store: any key made since the intent goes.
            signer = session or held
            listed = self.iam.list_keys(signer, region, user)
            orphans = [
                k.access_key_id
                for k in listed
                if k.access_key_id != entry.old_key_id
                and (k.access_key_id == entry.new_key_id or k.access_key_id not in entry.before)
            ]
            for key_id in orphans:
                with contextlib.suppress(NoSuchKeyError):
                    self.iam.delete_key(signer, region, user, key_id)
            gone = ", ".join(mask_key_id(k) for k in orphans)
            done = f"undid the rotation of {profile}: kept {mask_key_id(held.access_key_id)}" + (
                f", deleted {gone} (created, never stored)" if orphans else ", nothing created"
            )
            self._remember(
                profile,
                held.access_key_id,
                [k for k in listed if k.access_key_id not in orphans],
            )
            self.journal.close(profile)
        else:
            done = (
                f"closed the rotation of {profile}: it now holds"
                f" {mask_key_id(held.access_key_id)}, neither key of that rotation; IAM left"
                " as it is"
            )
            self.journal.close(profile)
        log.warning("%s", done)
        return done

    def _pause(self, step: str) -> None:
        if self._pause_at != step:
            return
        sys.stderr.write(f"credd: test pause at {step}\n")
        sys.stderr.flush()
        while True:  # until the test kills the process
            time.sleep(3600)


def due_at(record: KeyRecord | None, rotate_every: int | None) -> datetime | None:
    """When the key is due for rotation (None: off, or its age unknown)."""
    created = record.created() if record is not None else None
    if rotate_every is None or created is None:
        return None
    return created + timedelta(seconds=rotate_every)


def _two_keys_reason(profile: str, held: str, other: str) -> str:
    return (
        f"the IAM user of {profile} already has two access keys ({mask_key_id(held)}, held by"
        f" credd, and {mask_key_id(other)}): nothing was created; delete {mask_key_id(other)}"
        " if it is unused (aws iam delete-access-key) and rotate again"
    )


def _file_keys(section: Mapping[str, str] | None) -> tuple[str, str] | None:
    if not section:
        return None
    key_id, secret = section.get(_KEY_ID), section.get(_SECRET)
    if not (key_id and secret) or any(section.get(t) for t in _TOKENS):
        return None
    return key_id, secret
