"""The daemon's side of key rotation: when to rotate, and what status shows of each key.

Rotation is about a source profile's long-term key, not about a profile's
renewal, so it stays out of the state machine (machine.py): a renewal never
waits for a rotation, and a rotation never changes a profile's state. Dependent
sessions pick the new key up at their next renewal, since the daemon reads the
source's keys (keyring, then file) afresh each time.

Per source with `rotate_every` (the shortest of its profiles'):

- at start, a rotation cut off before (the journal) is finished or undone;
- the key's age is asked of IAM (ListAccessKeys' CreateDate) at start and every
  `CHECK_EVERY`, signed with the MFA session held for that source when there is
  one (else the key itself);
- when the age passes `rotate_every`, the key is rotated (rotate.py), likewise;
- a failure is retried after `RETRY_AFTER`; two keys present (blocked) is
  looked at again at the next age check.

`credctl rotate PROFILE` rotates now, whatever the age. Every IAM, keyring and
file call runs in the daemon's thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from credd.credentials import Credentials, format_utc, mask_key_id, parse_utc
from credd.errors import BadInputError, CreddError, Fault
from credd.policy import Policy
from credd.rotation.journal import KeyRecord
from credd.rotation.rotate import Rotated, RotationBlocked, Rotator, due_at
from credd.states import Kind

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_EVERY = timedelta(hours=12)
RETRY_AFTER = timedelta(hours=1)


@dataclass
class KeyState:
    """What the daemon knows of one source's key and its rotation."""

    source: str
    rotate_every: int | None
    region: str
    record: KeyRecord | None = None
    activity: str | None = None  # recovering, checking, rotating
    problem: str | None = None  # why the last attempt failed or was blocked
    retry_at: datetime | None = None
    task: asyncio.Task[Any] | None = None

    @property
    def busy(self) -> bool:
        """An IAM conversation is under way for this key."""
        return self.task is not None and not self.task.done()


class Rotations:
    """Every source's key, for one daemon."""

    def __init__(
        self,
        rotator: Rotator,
        *,
        now: Callable[[], datetime],
        in_thread: Callable[[Callable[[], Any]], Awaitable[Any]],
        session_for: Callable[[str], Credentials | None],
    ) -> None:
        self.rotator = rotator
        self._now = now
        self._in_thread = in_thread
        self._session_for = session_for
        self._keys: dict[str, KeyState] = {}
        self._reading: asyncio.Task[None] | None = None

    def apply(self, policy: Policy) -> None:
        """The sources a policy names (start or reload); what was learnt of them is kept."""
        self.rotator.credentials_file = policy.credentials_file
        keys: dict[str, KeyState] = {}
        for profile in policy.profiles:
            if profile.source_is_managed:
                continue
            state = keys.get(profile.source_profile)
            if state is None:
                kept = self._keys.get(profile.source_profile)
                state = KeyState(profile.source_profile, None, profile.region)
                if kept is not None:
                    state.record, state.task = kept.record, kept.task
                    state.activity, state.problem = kept.activity, kept.problem
                keys[profile.source_profile] = state
            every = profile.rotate_every
            if every is not None:
                state.rotate_every = (
                    every if state.rotate_every is None else min(state.rotate_every, every)
                )
            if profile.kind is Kind.MFA_SESSION:
                state.region = profile.region
        self._keys = keys

    async def start(self) -> None:
        """Read the journal; finish the rotations cut off before."""
        try:
            data = await self._in_thread(self.rotator.journal.read)
        except CreddError as error:
            # Renewals do not depend on it: say so, and leave rotation to the next look.
            log.error("rotation journal: %s", error.message)
            for state in self._keys.values():
                state.problem = error.message
            return
        for name, state in self._keys.items():
            state.record = data.keys.get(name)
        for name in data.open:
            found = self._keys.get(name)
            if found is None:
                continue  # not this policy's: `credd keys list` or `keys rotate` finishes it
            self._begin(found, "recovering", self._recover(found))

    def tick(self) -> None:
        """Start the age checks and rotations that are due (the heartbeat calls this).

        The journal is read again first, off the loop: `credd keys rotate` may have
        rotated a key behind the daemon's back, and status must not show the old one.
        """
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._reread_then_plan())

    async def _reread_then_plan(self) -> None:
        try:
            data = await self._in_thread(self.rotator.journal.read)
        except CreddError as error:
            log.error("rotation journal: %s", error.message)
            return
        for name, state in self._keys.items():
            if not state.busy and name in data.keys:
                state.record = data.keys[name]
        self._plan()

    def _plan(self) -> None:
        now = self._now()
        for state in self._keys.values():
            if state.rotate_every is None or state.busy:
                continue
            if state.retry_at is not None and now < state.retry_at:
                continue
            record = state.record
            checked = parse_utc(record.checked_at) if record and record.checked_at else None
            if checked is None or now - checked >= CHECK_EVERY:
                self._begin(state, "checking", self._check(state))
                continue
            due = due_at(record, state.rotate_every)
            if due is not None and due <= now and (record is None or record.blocked is None):
                self._begin(state, "rotating", self._rotate(state))

    async def rotate_now(self, name: str, policy: Policy) -> dict[str, Any]:
        """`credctl rotate NAME`: NAME is a source holding the key, or a profile made from one."""
        source = name
        profile = policy.get(name)
        if profile is not None:
            if profile.source_is_managed:
                raise BadInputError(
                    f"{name} is made from {profile.source_profile}, a session credd manages;"
                    " rotate the profile that holds the long-term key",
                    fault=Fault.UNKNOWN_PROFILE,
                )
            source = profile.source_profile
        state = self._keys.get(source)
        if state is None:
            raise BadInputError(
                f"no profile of the policy uses long-term keys of {name}",
                fault=Fault.UNKNOWN_PROFILE,
            )
        while state.busy:
            assert state.task is not None
            await asyncio.wait([state.task])
        task = self._begin(state, "rotating", self._rotate(state, raising=True))
        rotated = await task
        assert rotated is not None  # raising=True: a failure is raised
        return {
            "profile": rotated.profile,
            "old_key_id": mask_key_id(rotated.old_key_id),
            "new_key_id": mask_key_id(rotated.new_key_id),
            "where": rotated.where,
            "message": rotated.describe(),
        }

    def status(self) -> list[dict[str, Any]]:
        """Each key as `credctl status --json` shows it (`keys`)."""
        return [self._describe(state) for state in self._keys.values()]

    def _describe(self, state: KeyState) -> dict[str, Any]:
        record = state.record
        due = due_at(record, state.rotate_every)
        rotation = state.activity or ("blocked" if record is not None and record.blocked else None)
        rotation = rotation or ("failed" if state.problem else "idle")
        return {
            "profile": state.source,
            "key_id": mask_key_id(record.key_id) if record else None,
            "created_at": record.created_at if record else None,
            "checked_at": record.checked_at if record else None,
            "rotated_at": record.rotated_at if record else None,
            "rotate_every": state.rotate_every,
            "next_rotation": format_utc(due) if due is not None else None,
            "rotation": rotation,
            "reason": state.problem or (record.blocked if record else None),
        }

    # ------------------------------------------------------------------ work

    def _begin(self, state: KeyState, activity: str, work: Awaitable[T]) -> asyncio.Task[T]:
        state.activity = activity

        async def run() -> T:
            try:
                return await work
            finally:
                state.activity = None

        task = asyncio.get_running_loop().create_task(run())
        state.task = task
        task.add_done_callback(_consume)
        return task

    def _failed(self, state: KeyState, what: str, error: CreddError) -> None:
        state.problem = f"{what} failed: {error.message}"
        state.retry_at = self._now() + RETRY_AFTER
        log.error("%s: %s; trying again at %s", state.source, state.problem, state.retry_at)

    async def _recover(self, state: KeyState) -> None:
        session = self._session_for(state.source)
        try:
            done = await self._in_thread(
                lambda: self.rotator.recover(state.source, session, state.region)
            )
        except CreddError as error:
            self._failed(state, "finishing a rotation cut off before", error)
            return
        if done:
            state.problem = None
        state.record = await self._in_thread(lambda: self.rotator.journal.record(state.source))

    async def _check(self, state: KeyState) -> None:
        session = self._session_for(state.source)
        try:
            state.record = await self._in_thread(
                lambda: self.rotator.check_age(state.source, session, state.region)
            )
        except CreddError as error:
            self._failed(state, "asking IAM the key's age", error)
            return
        state.problem, state.retry_at = None, None
        if state.record.blocked:
            log.warning("%s: %s", state.source, state.record.blocked)

    async def _rotate(self, state: KeyState, *, raising: bool = False) -> Rotated | None:
        session = self._session_for(state.source)
        log.info(
            "%s: rotating its key, IAM called with %s",
            state.source,
            "the MFA session held"
            if session is not None
            else "the key itself (no MFA session held)",
        )
        try:
            rotated: Rotated = await self._in_thread(
                lambda: self.rotator.rotate(state.source, session, state.region)
            )
        except CreddError as error:
            state.record = await self._in_thread(lambda: self.rotator.journal.record(state.source))
            if isinstance(error, RotationBlocked):
                state.problem = None
                log.warning("%s: %s", state.source, error.message)
            else:
                self._failed(state, "rotating the key", error)
            if raising:
                if error.fault == Fault.INTERNAL:
                    error.fault = Fault.STS_FAILED
                raise
            return None
        state.problem, state.retry_at = None, None
        state.record = await self._in_thread(lambda: self.rotator.journal.record(state.source))
        log.info("%s", rotated.describe())
        return rotated


def sessions_by_source(entries: Iterable[Any], now: datetime) -> dict[str, Credentials]:
    """For each source, the valid MFA session credd holds made from its key."""
    found: dict[str, Credentials] = {}
    for entry in entries:
        profile = entry.profile
        creds = entry.credentials
        if (
            profile.kind is Kind.MFA_SESSION
            and creds is not None
            and creds.session_token
            and creds.is_valid_at(now)
        ):
            found.setdefault(profile.source_profile, creds)
    return found


def _consume(task: asyncio.Task[Any]) -> None:
    """Its failure is recorded in the key's state (or raised to `credctl rotate`)."""
    if not task.cancelled():
        task.exception()
