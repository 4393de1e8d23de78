"""The daemon's heart: every profile's renewal, carried out as the state machine says.

One asyncio event loop owns all of this state, so there are no locks: STS calls
and file writes run in a small thread pool and come back to the loop. Each
profile's transitions are `machine.step`'s alone; this module feeds it events
(timers, STS answers, writes, codes, reloads) and carries out the one action and
the one timer it returns. Around it: the file's custody (custody.py), the
subscribers (hub.py), the socket's requests (requests.py) and the summaries
(summary.py). The adapters (STS, scheduler, writer, clock, notifications) come in
as constructor arguments, so tests drive the whole daemon with fakes and a fake
clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from credd.adapters.clock import Clock, JumpDetector
from credd.adapters.keyring import Keyring, long_term_keys
from credd.adapters.scheduler import Scheduler
from credd.adapters.sts import StsClient
from credd.credentials import Credentials, mask_key_id
from credd.daemon import planner, requests, summary
from credd.daemon.custody import CredentialsStore, FileCustody
from credd.daemon.endpoint import Held
from credd.daemon.hub import Hub
from credd.daemon.machine import Action, Decision, Event, View, step
from credd.daemon.rotations import Rotations, sessions_by_source
from credd.errors import (
    BadInputError,
    CodeRejectedError,
    CreddError,
    Fault,
    KeyringError,
    NoCredentialsError,
    PolicyError,
    StsTransientError,
)
from credd.files.awsconfig import RegionRecorder
from credd.files.writer import FileHealth
from credd.policy import Policy, Profile
from credd.policy.filecheck import blocked_by_file, sources_without_file_keys
from credd.rotation.rotate import Rotator
from credd.states import State
from credd.timetext import format_relative

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every profile is re-checked this often, so a renewal missed during a suspend or a
# clock jump is caught within a minute (SPEC.md "Sleep and clock jumps").
HEARTBEAT_SECONDS = 30.0
# A timer that fires a little early (clock granularity) still counts as due.
DUE_SLACK = timedelta(seconds=1)


class Notifier(Protocol):
    """The service manager's view of the daemon (sd_notify under systemd)."""

    def status(self, text: str) -> None:
        """Set the one-line status."""
        ...

    def reloading(self) -> None:
        """A reload has begun."""
        ...

    def ready(self, status: str) -> None:
        """Started, or a reload has ended."""
        ...


class CodeHelper(Protocol):
    """Where a code comes from besides the socket: `notify` and `code_command` (codesources)."""

    async def code_needed(self, profile: Profile, message: str) -> str | None:
        """Tell the person a code is needed; return a code if a code command gave one."""
        ...


class EndpointOps(Protocol):
    """The local credentials endpoint, as the control socket reaches it (daemon.endpoint)."""

    @property
    def url(self) -> str | None:
        """Its URL once it listens, else None."""
        ...

    async def handle(self, op: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one of `protocol.ENDPOINT_OPS` (a CreddError for a failure)."""
        ...


@dataclass
class Entry:
    """One profile's live state. Owned by the event loop; never shared across threads.

    `state`, `next_refresh_at`, `last_error`, `attempts` and `asked` change only as
    `machine.step` decides; `credentials`, `issued_at` and `unwritten` record facts.
    """

    profile: Profile
    state: State = State.PENDING
    credentials: Credentials | None = None  # its repr masks the secret and the token
    issued_at: datetime | None = None
    next_refresh_at: datetime | None = None
    last_error: str | None = None
    waiting_since: datetime | None = None
    attempts: int = 0
    unwritten: bool = False  # held in memory, not (yet) in the file
    asked: bool = False  # an open request for a code, announced
    keys_blocked: bool = False  # the source's long-term keys could not be read (keyring)
    work: asyncio.Task[None] | None = field(default=None, repr=False)  # STS call or write

    @property
    def name(self) -> str:
        """The profile's name."""
        return self.profile.name

    @property
    def expires_at(self) -> datetime | None:
        """When the credentials held expire, if any are held."""
        return self.credentials.expires_at if self.credentials else None

    @property
    def busy(self) -> bool:
        """A renewal or a write is in flight."""
        return self.work is not None and not self.work.done()


class Daemon:
    """Keeps the policy's profiles fresh and answers the control socket's requests."""

    def __init__(
        self,
        *,
        policy: Policy,
        load_policy: Callable[[], Policy],
        sts: StsClient,
        clock: Clock,
        scheduler: Scheduler,
        executor: Executor,
        writer_for: Callable[[Path], CredentialsStore],
        notifier: Notifier | None = None,
        code_helper: CodeHelper | None = None,
        endpoint: EndpointOps | None = None,
        regions: RegionRecorder | None = None,
        keyring: Keyring | None = None,
        rotator: Rotator | None = None,
        socket_path: Path | None = None,
        pid: int = 0,
        version: str = "",
        write_delay: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._load_policy = load_policy
        self._sts = sts
        self._clock = clock
        self._scheduler = scheduler
        self._executor = executor
        self._notifier = notifier
        self._code_helper = code_helper
        self.endpoint = endpoint
        self._regions = regions
        self._keyring = keyring  # None: long-term keys come from the credentials file only
        self._socket_path = socket_path
        self.pid = pid
        self._version = version
        self._rand = rand
        self._started_at = clock.now()
        self._entries: dict[str, Entry] = {}
        self._hub = Hub()
        self._jumps = JumpDetector(clock)
        self._custody = FileCustody(
            policy.credentials_file,
            writer_for=writer_for,
            executor=executor,
            write_delay=write_delay,
        )
        # Profiles the credentials file blocks as it stands (SPEC.md "The AWS files, before
        # a code is spent"), with why: looked at on start, on reload, and when it changes.
        self._file_blocked: dict[str, str] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._verifying: asyncio.Task[None] | None = None
        self._status_due = False  # a STATUS= send is queued on the loop
        # Long-term keys' age and rotation (rotations.py); None: this daemon does not rotate.
        self._rotations = (
            Rotations(
                rotator,
                now=clock.now,
                in_thread=self._in_thread,
                session_for=self._session_for,
            )
            if rotator is not None
            else None
        )
        if self._rotations is not None:
            self._rotations.apply(policy)
        self.stopping = False  # no new work may start: its write would be cut off

    # ------------------------------------------------------------------ lifecycle

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._policy

    def entry(self, name: str) -> Entry | None:
        """One profile's live state (for tests and the service layer)."""
        return self._entries.get(name)

    def entries(self) -> list[Entry]:
        """Every profile's live state, in the policy's order."""
        return list(self._entries.values())

    async def start(self) -> None:
        """Read what is on disk and make the first plan: every profile's state becomes known.

        The credentials file is looked at first: a profile it blocks is `error` at once,
        and no code is asked for it that could not be written.
        """
        health, sections = await self._custody.inspect_and_read()
        self._note_file(health, await self._keyring_holding(self._policy, health))
        for profile in self._policy.profiles:
            self._entries[profile.name] = Entry(profile)
        # Sources come first in the policy's order, so a role sees its source's state.
        for profile in self._policy.profiles:
            entry = self._entries[profile.name]
            self._hold(entry, planner.credentials_from_section(sections.get(profile.name)))
            self._plan(entry)
        self._changed()
        if self._rotations is not None:
            await self._rotations.start()

    def start_scheduler(self) -> None:
        """Start the scheduler on the running loop."""
        self._scheduler.start()

    async def heartbeat(self, on_beat: Callable[[], None] = lambda: None) -> None:
        """Runs forever: notices suspends and clock jumps, and fires anything overdue."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            on_beat()
            self.tick()

    def tick(self) -> None:
        """One heartbeat: re-plan after a jump; run whatever is due and not running."""
        jump = self._jumps.check()
        if jump is not None:
            log.info(
                "clocks disagree (suspended %.0fs, wall clock moved %+.0fs): re-planning",
                jump.suspended,
                jump.wall_shift,
            )
            self._scheduler.wakeup()
        now = self._clock.now()
        for entry in list(self._entries.values()):
            if entry.busy:
                continue
            if entry.next_refresh_at is not None and entry.next_refresh_at <= now + DUE_SLACK:
                self._due(entry)
            elif entry.state is State.FRESH and not _valid(entry.credentials, now):
                # A role that follows its source has no timer of its own; when the source
                # waits for a code past its expiry, the role's credentials run out too.
                self._event(entry, Event.RAN_OUT)
        if not self.stopping and (self._verifying is None or self._verifying.done()):
            self._verifying = asyncio.get_running_loop().create_task(self._verify_file())
        if not self.stopping and self._rotations is not None:
            self._rotations.tick()

    async def stop(self) -> None:
        """Stop cleanly: no new work; let an STS call or a write that has begun finish.

        Subscribers are told goodbye; one that stopped reading is dropped, not waited for.
        """
        self.stopping = True
        self._scheduler.shutdown()
        for task in [*self._background, self._verifying]:
            if task is not None:
                task.cancel()
        for entry in self._entries.values():
            if entry.work is not None and not entry.work.done():
                entry.work.cancel()
        await self._custody.stop()
        self._hub.shutdown()

    # ------------------------------------------------------------------ the machine

    def _view(self, entry: Entry) -> View:
        return View(
            state=entry.state,
            needs_code=entry.profile.needs_code,
            expires_at=entry.expires_at,
            issued_at=entry.issued_at,
            refresh_before=entry.profile.refresh_before,
            attempts=entry.attempts,
            unwritten=entry.unwritten,
            asked=entry.asked,
            planned=entry.next_refresh_at,
            source_renews_at=self._source_renews_at(entry.profile),
            error=entry.last_error,
            keys_blocked=entry.keys_blocked,
        )

    def _event(self, entry: Entry, event: Event, *, error: str | None = None) -> None:
        """Feed `event` to the machine and carry out its decision."""
        if not self._is_current(entry):
            return
        now = self._clock.now()
        decision = step(self._view(entry), event, now, error=error, jitter=self._rand())
        self._carry_out(entry, decision)

    def _carry_out(self, entry: Entry, decision: Decision) -> None:
        entry.state, entry.last_error = decision.state, decision.error
        entry.attempts, entry.asked = decision.attempts, decision.asked
        if not decision.asked:
            entry.waiting_since = None
        if decision.when is None:
            self._unschedule(entry)
        else:
            self._schedule(entry, decision.when)
        self._changed()
        if self.stopping:
            return
        if decision.action is Action.RENEW:
            self._start(entry, self._renew(entry, code=None))
        elif decision.action is Action.ASK_CODE:
            self._ask_for_code(entry)
        elif decision.action is Action.WRITE:
            self._start(entry, self._write_held(entry))
        elif decision.action is Action.CHECK_KEYS:
            self._start(entry, self._check_keys(entry))

    def _hold(self, entry: Entry, held: Credentials | None) -> None:
        """Record credentials found on disk (or kept over a reload) for `entry`."""
        if held is None:
            return
        entry.credentials = held
        if held.expires_at is not None:
            # The file does not say when they were issued; the policy's duration is the
            # best guess.
            duration = timedelta(seconds=entry.profile.duration)
            entry.issued_at = min(self._clock.now(), held.expires_at - duration)

    def _plan(self, entry: Entry) -> None:
        """The first plan of a profile (start or reload)."""
        problem = self.blocked(entry.name)
        if problem is not None:
            self._event(entry, Event.BLOCKED, error=problem)
        else:
            self._event(entry, Event.PLAN)

    def blocked(self, name: str) -> str | None:
        """Why profile `name` cannot be renewed until the policy or the file is fixed."""
        return self._policy.problems.get(name) or self._file_blocked.get(name)

    async def _keyring_holding(self, policy: Policy, health: FileHealth) -> frozenset[str]:
        """The sources the file holds no keys for whose keys the keyring holds (or may)."""
        missing = sources_without_file_keys(policy, health)
        keyring = self._keyring
        if not missing or keyring is None:
            return frozenset()
        return await self._in_thread(lambda: keyring.holding(missing))

    def _note_file(self, health: FileHealth, in_keyring: frozenset[str]) -> dict[str, str]:
        """Record which profiles the credentials file blocks now; what it blocked before."""
        before = self._file_blocked
        self._file_blocked = blocked_by_file(self._policy, health, in_keyring)
        for name, reason in self._file_blocked.items():
            if before.get(name) != reason:
                log.error("%s cannot be renewed: %s", name, reason)
        return before

    async def _recheck_file(self) -> None:
        """Look at the file again when it changed (or while it blocks a profile)."""
        health = await self._custody.inspect_if_changed(force=bool(self._file_blocked))
        if health is not None:
            in_keyring = await self._keyring_holding(self._policy, health)
            await self._reconcile_file(self._note_file(health, in_keyring))

    async def _reconcile_file(self, before: Mapping[str, str]) -> None:
        """Block the profiles the file now blocks; plan again those it blocked `before`."""
        freed = [
            e
            for e in self._entries.values()
            if not e.busy
            and e.name in before
            and self.blocked(e.name) is None
            and e.state is State.ERROR
            and e.last_error == before[e.name]
        ]
        if freed:
            log.info("the credentials file no longer blocks %s", ", ".join(e.name for e in freed))
            sections = await self._read_file_quietly()
            for entry in freed:
                if not self._is_current(entry) or entry.busy:
                    continue
                if entry.credentials is None:
                    self._hold(entry, planner.credentials_from_section(sections.get(entry.name)))
                self._event(entry, Event.PLAN)
        for entry in list(self._entries.values()):
            reason = self._file_blocked.get(entry.name)
            if reason is None or entry.busy or entry.name in self._policy.problems:
                continue
            if entry.state is State.ERROR and entry.last_error == reason:
                continue
            self._event(entry, Event.BLOCKED, error=reason)

    def _source_renews_at(self, profile: Profile) -> datetime | None:
        if not profile.source_is_managed:
            return None
        source = self._entries.get(profile.source_profile)
        return source.next_refresh_at if source is not None else None

    def _is_current(self, entry: Entry) -> bool:
        """False for an entry a reload removed or replaced: its late work must not act."""
        return self._entries.get(entry.name) is entry

    def _schedule(self, entry: Entry, when: datetime) -> None:
        entry.next_refresh_at = when
        self._scheduler.at(entry.name, when, self._on_timer)

    def _unschedule(self, entry: Entry) -> None:
        if entry.next_refresh_at is not None:
            entry.next_refresh_at = None
            self._scheduler.cancel(entry.name)

    async def _on_timer(self, name: str) -> None:
        entry = self._entries.get(name)
        if entry is None or entry.busy or entry.next_refresh_at is None:
            return
        if entry.next_refresh_at > self._clock.now() + DUE_SLACK:
            return  # a stale timer: the plan changed since it was set
        self._due(entry)

    def _due(self, entry: Entry) -> None:
        entry.next_refresh_at = None  # fired: the scheduler holds no job for it any more
        self._event(entry, Event.DUE)

    def _start(self, entry: Entry, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        entry.work = task
        # Its failures are recorded in the entry; a fed code's caller awaits the task.
        task.add_done_callback(_consume)
        return task

    # ------------------------------------------------------------------ codes

    def _ask_for_code(self, entry: Entry) -> None:
        entry.waiting_since = entry.waiting_since or self._clock.now()
        event = self._code_needed_event(entry)
        log.info("%s needs an MFA code", entry.name)
        self._hub.broadcast(event)
        if self._code_helper is not None:
            self._spawn(self._use_code_helper(entry, event["message"]))

    def _code_needed_event(self, entry: Entry) -> dict[str, Any]:
        return {
            "event": "code-needed",
            "profile": entry.name,
            "mfa_serial": entry.profile.mfa_serial,
            "message": self._code_message(entry),
            "expires_at": summary.utc(entry.expires_at),
        }

    def _code_message(self, entry: Entry) -> str:
        expiry = entry.expires_at
        now = self._clock.now()
        if expiry is None or expiry <= now:
            left = "it has no valid session"
        else:
            left = f"its session expires in {format_relative((expiry - now).total_seconds())}"
        message = f"credd needs an MFA code for {entry.name} ({entry.profile.mfa_serial}); {left}"
        if entry.state is State.ERROR and entry.last_error:
            message += f"; last error: {entry.last_error}"
        return message

    async def _use_code_helper(self, entry: Entry, message: str) -> None:
        assert self._code_helper is not None
        code = await self._code_helper.code_needed(entry.profile, message)
        if code is None or not self._is_current(entry) or not entry.asked or entry.busy:
            return
        try:
            await self._feed(entry, code)
        except CreddError as error:
            log.warning("%s: the code command's code was not used: %s", entry.name, error)

    async def feed_code(self, code: str, name: str | None) -> dict[str, Any]:
        """Use a code for `name`, or for the profile that waited longest (SPEC.md `token`)."""
        entry = await self._feed(self._code_target(name), code)
        return {
            "profile": entry.name,
            "expires_at": summary.utc(entry.expires_at),
            "waiting": [e.name for e in self._entries.values() if e.state is State.AWAITING_CODE],
        }

    def code_target(self, name: str | None) -> str:
        """The profile a code for `name` (None: whichever waits longest) would renew now.

        Asked by `credctl token` on a terminal, to name the profile before the code is
        typed; the same refusals as feeding a code, so none is typed in vain.
        """
        return self._code_target(name).name

    async def _feed(self, entry: Entry, code: str) -> Entry:
        """Renew `entry` with a code and wait for the result; returns the entry it served.

        A reload while STS answers may have replaced the entry: an accepted code then
        serves its successor (a code AWS has taken is never wasted). Errors go to whoever
        fed the code.
        """
        if entry.busy:
            raise BadInputError(
                f"{entry.name} is being renewed right now; wait for the result",
                fault=Fault.NOTHING_TO_RENEW,
            )
        self._event(entry, Event.CODE_FED)
        await self._start(entry, self._renew(entry, code))
        return self._entries.get(entry.name) or entry

    def _code_target(self, name: str | None) -> Entry:
        if name is not None:
            entry = self._entries.get(name)
            if entry is None:
                raise BadInputError(f"no profile {name} in the policy", fault=Fault.UNKNOWN_PROFILE)
            if not entry.profile.needs_code:
                raise BadInputError(
                    f"{name} takes no MFA code (a role renewed on its source)",
                    fault=Fault.NOT_AN_MFA_PROFILE,
                )
            reason = self.blocked(name)
            if reason is not None:
                # Asked before the code is used: AWS would take it, and nothing could be written.
                raise BadInputError(
                    f"{name} cannot be renewed until this is fixed (the code was not used):"
                    f" {reason}",
                    fault=Fault.NOTHING_TO_RENEW,
                )
            return entry
        candidates = [
            planner.Waiting(
                e.name,
                State.AWAITING_CODE if e.asked and not e.busy else e.state,
                e.waiting_since,
                e.expires_at,
            )
            for e in self._entries.values()
            if e.profile.needs_code and (e.asked or e.state is not State.ERROR)
        ]
        target = planner.pick_code_target(candidates)
        if target is None:
            raise BadInputError(
                "no profile takes an MFA code right now", fault=Fault.NOTHING_TO_RENEW
            )
        return self._entries[target]

    # ------------------------------------------------------------------ renewal

    async def _renew(self, entry: Entry, code: str | None) -> None:
        """One STS call for `entry` (with `code` for an MFA session), then its write."""
        profile = entry.profile
        try:
            creds = await self._call_sts(profile, code)
        except CodeRejectedError as error:
            log.warning("%s: %s", profile.name, error.message)
            self._event_successor(entry, Event.CODE_REJECTED, error=error.message)
            raise
        except StsTransientError as error:
            if code is None:
                log.warning("%s: %s", profile.name, error.message)
                self._event_successor(entry, Event.STS_RETRYABLE, error=error.message)
                return
            # The code may or may not have reached AWS: never resend it (SPEC.md).
            message = f"{error.message}; feed a fresh code"
            log.warning("%s: %s", profile.name, message)
            self._event_successor(entry, Event.CODE_REJECTED, error=message)
            raise
        except _WaitingForSource as waiting:
            self._event_successor(entry, Event.WAITING_FOR_SOURCE, error=str(waiting))
            return
        except KeyringError as error:
            # Nothing reached AWS: a code fed is unused, and the profile retries by itself.
            log.warning("%s: %s", profile.name, error.message)
            target = self._successor(entry)
            if target is not None:
                target.keys_blocked = True
                self._event(target, Event.KEYS_UNAVAILABLE, error=error.message)
            if code is not None:
                raise KeyringError(f"{error.message}; the code was not used") from None
            return
        except CreddError as error:
            log.error("%s: %s", profile.name, error.message)
            self._event_successor(entry, Event.STS_FAILED, error=error.message)
            if code is not None:
                raise
            return
        except Exception as error:
            # A bug or an OS failure outside the adapters' own errors: never leave the
            # profile stuck in `refreshing`; say so, and try again later.
            log.exception("%s: unexpected failure while renewing", profile.name)
            message = f"unexpected failure while renewing: {type(error).__name__}"
            self._event_successor(entry, Event.STS_FAILED, error=message)
            if code is not None:
                raise CreddError(message) from None
            return
        target = self._successor(entry)
        if target is None:
            message = (
                f"{profile.name} was removed or changed by a reload while STS answered;"
                " its new credentials were not used"
            )
            log.warning("%s", message)
            if code is not None:
                raise CreddError(message)
            return
        target.credentials, target.issued_at = creds, self._clock.now()
        target.unwritten = True
        target.keys_blocked = False
        log.info(
            "%s renewed (%s), expires %s",
            profile.name,
            mask_key_id(creds.access_key_id),
            summary.utc(creds.expires_at),
        )
        await self._write(target, creds, urgent=code is not None, raise_error=code is not None)
        if code is not None:
            self._hub.broadcast(
                {
                    "event": "code-resolved",
                    "profile": target.name,
                    "expires_at": summary.utc(creds.expires_at),
                }
            )
        self._renew_dependents(target)

    def _successor(self, entry: Entry) -> Entry | None:
        """The entry now in force for `entry`'s profile, if its result still fits it.

        A reload that changed only settings (duration, lead, notify ...) keeps the
        result: the same source, MFA device and role make the same credentials.
        """
        current = self._entries.get(entry.name)
        if current is None:
            return None
        if current is entry or _same_identity(current.profile, entry.profile):
            return current
        return None

    def _event_successor(self, entry: Entry, event: Event, *, error: str | None) -> None:
        target = self._successor(entry)
        if target is not None:
            self._event(target, event, error=error)

    async def _write(
        self, entry: Entry, creds: Credentials, *, urgent: bool, raise_error: bool
    ) -> None:
        try:
            await self._custody.write(entry.name, creds, urgent=urgent)
        except Exception as error:
            # Held in memory (credential-process still works) and written again later;
            # the file itself is left exactly as it was.
            if isinstance(error, CreddError):
                message = error.message
                log.error("%s: %s", entry.name, message)
            else:
                message = f"unexpected failure while writing: {type(error).__name__}"
                log.exception("%s: %s", entry.name, message)
            target = self._successor(entry)
            if target is not None and target.credentials is creds:
                self._event(target, Event.WRITE_FAILED, error=message)
            if raise_error:
                raise error if isinstance(error, CreddError) else CreddError(message) from None
            return
        target = self._successor(entry)
        if target is not None and target.credentials is creds:
            target.unwritten = False
            self._event(target, Event.WRITTEN)
            self._record_region(target.profile)

    def _record_region(self, profile: Profile) -> None:
        """Give a profile written for the first time its region in the AWS config, if it has
        no section there (SPEC.md "Region for new profiles")."""
        regions = self._regions
        if regions is not None and regions.claim(profile.name, profile.region):
            self._spawn(self._in_thread(regions.flush))

    async def _write_held(self, entry: Entry) -> None:
        """Write the credentials held again (a write failed, or another program lost them)."""
        creds = entry.credentials
        assert creds is not None
        await self._write(entry, creds, urgent=False, raise_error=False)

    def _renew_dependents(self, entry: Entry) -> None:
        for dependent in self._policy.dependents(entry.name):
            child = self._entries.get(dependent.name)
            if (
                child is not None
                and not child.busy
                and not child.profile.needs_code
                and self.blocked(child.name) is None
            ):
                self._event(child, Event.REFRESH)

    async def _call_sts(self, profile: Profile, code: str | None) -> Credentials:
        now = self._clock.now()
        source = self._managed_source(profile)
        if profile.source_is_managed:
            if source is None or not source.is_valid_at(now):
                raise _WaitingForSource(
                    f"waiting for {profile.source_profile} to have a valid session"
                )
        else:
            source = await self._long_term_keys(profile)
        if profile.role_arn is None:
            assert profile.mfa_serial is not None and code is not None
            serial, duration = profile.mfa_serial, profile.duration
            return await self._in_thread(
                lambda: self._sts.get_session_token(
                    source=source,
                    region=profile.region,
                    serial=serial,
                    code=code,
                    duration=duration,
                )
            )
        duration_or_none = planner.role_duration(
            profile.duration, source=source if profile.source_is_managed else None, now=now
        )
        if duration_or_none is None:
            raise _WaitingForSource(
                f"{profile.source_profile} expires too soon to chain on; renewed after it"
            )
        role_arn, role_duration = profile.role_arn, duration_or_none
        return await self._in_thread(
            lambda: self._sts.assume_role(
                source=source,
                region=profile.region,
                role_arn=role_arn,
                session_name=profile.role_session_name or f"credd-{profile.name}",
                duration=role_duration,
                external_id=profile.external_id,
                serial=profile.mfa_serial if code is not None else None,
                code=code,
            )
        )

    def _managed_source(self, profile: Profile) -> Credentials | None:
        if not profile.source_is_managed:
            return None
        source = self._entries.get(profile.source_profile)
        return source.credentials if source else None

    async def _long_term_keys(self, profile: Profile) -> Credentials:
        """The source's keys: the keyring's first, then the file's (read off the loop)."""
        sections = await self._custody.read()
        name = profile.source_profile
        in_file = planner.long_term_credentials(sections.get(name))
        found = (
            await self._in_thread(lambda: long_term_keys(self._keyring, name, in_file))
            if self._keyring is not None
            else long_term_keys(None, name, in_file)
        )
        if found is None:
            where = " or the keyring" if self._keyring is not None else ""
            raise CreddError(
                f"source profile {name} has no aws_access_key_id and "
                f"aws_secret_access_key in {self._policy.credentials_file}{where}"
            )
        return found[0]

    async def _check_keys(self, entry: Entry) -> None:
        """Read the source's keys before a code is asked for again (a keyring was locked)."""
        try:
            await self._long_term_keys(entry.profile)
        except KeyringError as error:
            self._event(entry, Event.KEYS_UNAVAILABLE, error=error.message)
            return
        except CreddError as error:
            entry.keys_blocked = False
            self._event(entry, Event.STS_FAILED, error=error.message)
            return
        entry.keys_blocked = False
        log.info("%s: the keys of %s can be read again", entry.name, entry.profile.source_profile)
        self._event(entry, Event.KEYS_READY)

    # ------------------------------------------------------------------ the file

    async def _verify_file(self) -> None:
        """Put back what another program overwrote in a managed section since the last look.

        The other way round, a write into the file credd has just replaced is carried over
        a moment after each write (custody.py).
        """
        await self._recheck_file()
        now = self._clock.now()
        held = {
            e.name: e.credentials
            for e in self._entries.values()
            if e.state is State.FRESH and not e.busy and _valid(e.credentials, now)
        }
        for name in await self._custody.changed_sections(held):  # type: ignore[arg-type]
            entry = self._entries.get(name)
            if entry is None or entry.busy or entry.credentials is not held[name]:
                continue
            log.warning(
                "%s was changed in %s by another program; writing it again",
                name,
                self._policy.credentials_file,
            )
            entry.unwritten = True
            self._event(entry, Event.OVERWRITTEN)

    async def _read_file_quietly(self) -> Mapping[str, Mapping[str, str]]:
        """The credentials file's sections; an unreadable file reads as empty here.

        Its error surfaces at the first write, in the profile that tried it.
        """
        try:
            return await self._custody.read()
        except CreddError as error:
            log.error("%s", error.message)
            return {}

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ status & events

    def _changed(self) -> None:
        """Send STATUS= once the current burst of state changes is over.

        The summary walks every profile: sent on each change, a start or a fan-out over
        1,000 profiles cost O(n²) (most of `credd run`'s time to READY, bench/RESULTS.md
        #6). One send per event-loop iteration says the same thing.
        """
        if self._notifier is None or self._status_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send_status()
            return
        self._status_due = True
        loop.call_soon(self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        if self._notifier is not None:
            self._notifier.status(self.status_text())

    def status_text(self) -> str:
        """The one-line summary systemd shows: `3 fresh, 1 awaiting code: session-x`."""
        return summary.status_text(self._entries.values(), self._started_at)

    def status(self) -> dict[str, Any]:
        """The `credctl status --json` object (SPEC.md)."""
        daemon = {
            "pid": self.pid,
            "version": self._version,
            "started_at": summary.utc(self._started_at),
            "policy": str(self._policy.path),
            "credentials_file": str(self._policy.credentials_file),
            "endpoint": self.endpoint.url if self.endpoint is not None else None,
        }
        result = summary.status(daemon, self._entries.values())
        result["keys"] = self._rotations.status() if self._rotations is not None else []
        return result

    def _session_for(self, source: str) -> Credentials | None:
        """The valid MFA session held that was made from `source`'s long-term key."""
        return sessions_by_source(self._entries.values(), self._clock.now()).get(source)

    async def rotate(self, name: str) -> dict[str, Any]:
        """`credctl rotate NAME`: rotate that long-term key now (SPEC.md)."""
        if self._rotations is None:
            raise CreddError("this credd was started without key rotation")
        return await self._rotations.rotate_now(name, self._policy)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of events for `credctl prompt`; it starts with every code already awaited."""
        backlog = [self._code_needed_event(e) for e in self._entries.values() if e.asked]
        return self._hub.subscribe(backlog)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Forget a subscriber that went away."""
        self._hub.unsubscribe(queue)

    # ------------------------------------------------------------------ requests

    async def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one decoded request (any op but subscribe) with a reply object."""
        return await requests.handle(self, request)

    async def refresh(self, names: list[str]) -> dict[str, Any]:
        """Renew now: named profiles, or every profile that needs no code."""
        unknown = [n for n in names if n not in self._entries]
        if unknown:
            raise BadInputError(
                f"no profile {', '.join(sorted(unknown))} in the policy",
                fault=Fault.UNKNOWN_PROFILE,
            )
        chosen = (
            [self._entries[n] for n in names]
            if names
            else [e for e in self._entries.values() if not e.profile.needs_code]
        )
        awaiting: list[str] = []
        tasks: dict[str, asyncio.Task[None]] = {}
        blocked = [
            {"profile": e.name, "state": e.state.value, "error": self.blocked(e.name)}
            for e in chosen
            if self.blocked(e.name) is not None and not e.busy
        ]
        chosen = [e for e in chosen if e.busy or self.blocked(e.name) is None]
        for entry in chosen:
            if not entry.busy:
                self._event(entry, Event.REFRESH)
            if entry.profile.needs_code:
                awaiting.append(entry.name)
            elif entry.work is not None and not entry.work.done():
                tasks[entry.name] = entry.work
        if tasks:
            await asyncio.wait(tasks.values())
        # The entries chosen above, even if a reload replaced them meanwhile.
        done = [self._successor(e) or e for e in chosen if e.name in tasks]
        renewed = [e.name for e in done if e.state is State.FRESH]
        failed = blocked + [
            {"profile": e.name, "state": e.state.value, "error": e.last_error}
            for e in done
            if e.state is not State.FRESH
        ]
        return {"renewed": renewed, "awaiting_code": awaiting, "failed": failed}

    async def reload(self) -> dict[str, Any]:
        """Re-read the policy; an invalid one is reported and the old one kept."""
        if self._notifier is not None:
            self._notifier.reloading()
        try:
            policy = await self._in_thread(self._load_policy)
        except PolicyError as error:
            log.error("reload refused, keeping the policy in force: %s", error.message)
            raise
        else:
            health = await self._custody.inspect(policy.credentials_file)
            in_keyring = await self._keyring_holding(policy, health)
            before = self._apply_policy(policy, health, in_keyring)
            if self._rotations is not None:
                self._rotations.apply(policy)
            await self._reconcile_file(before)
        finally:
            if self._notifier is not None:
                self._notifier.ready(self.status_text())
        log.info("policy reloaded: %d profiles", len(policy.profiles))
        return {"profiles": len(policy.profiles), "warnings": list(policy.warnings)}

    def _apply_policy(
        self, policy: Policy, health: FileHealth, in_keyring: frozenset[str]
    ) -> dict[str, str]:
        """Put a new policy in force.

        Unchanged profiles are kept as they are. A changed or removed profile's STS call
        in flight is never cancelled: AWS may have taken its code. It finishes, and its
        result serves the new profile of that name when that one makes the same
        credentials (`_successor`); meanwhile the new entry counts as busy, so no second
        call (and no second use of a code) can start. `health` is the new policy's
        credentials file as it stands, `in_keyring` the sources it lacks that the keyring
        holds; returns the profiles the file blocked before.
        """
        old = self._entries
        self._custody.move_to(policy.credentials_file)
        self._policy = policy
        before = self._note_file(health, in_keyring)
        self._entries = {}
        new_names = {p.name for p in policy.profiles}
        for name, entry in old.items():
            if name not in new_names:
                self._unschedule(entry)
        fresh_plans: list[Entry] = []
        for profile in policy.profiles:
            kept = old.get(profile.name)
            if kept is not None and kept.profile == profile:
                self._entries[profile.name] = kept
                continue
            entry = Entry(profile)
            if kept is not None:
                self._unschedule(kept)
                if kept.profile.kind == profile.kind:
                    entry.credentials, entry.issued_at = kept.credentials, kept.issued_at
                    entry.unwritten = kept.unwritten
                if kept.busy and _same_identity(kept.profile, profile):
                    entry.work, entry.state = kept.work, State.REFRESHING
                    entry.asked, entry.waiting_since = kept.asked, kept.waiting_since
            self._entries[profile.name] = entry
            if not entry.busy:
                fresh_plans.append(entry)
        for entry in fresh_plans:
            self._plan(entry)
        self._changed()
        return before

    def held(self, name: str) -> Held | None:
        """What the local endpoint serves for `name`, from memory; None: no such profile."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        return Held(
            credentials=entry.credentials,
            state=entry.state,
            region=entry.profile.region,
            role_arn=entry.profile.role_arn,
            note=entry.last_error,
        )

    def credential_process(self, name: str) -> dict[str, Any]:
        """The AWS `credential_process` JSON for `name`, from memory."""
        entry = self._entries.get(name)
        if entry is None:
            raise BadInputError(f"no profile {name} in the policy", fault=Fault.UNKNOWN_PROFILE)
        creds = entry.credentials
        if creds is None or not creds.is_valid_at(self._clock.now()):
            raise NoCredentialsError(
                f"no valid credentials held for {name} (state: {entry.state.value})"
            )
        result: dict[str, Any] = {
            "Version": 1,
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
        }
        if creds.session_token:
            result["SessionToken"] = creds.session_token
        if creds.expires_at:
            result["Expiration"] = summary.utc(creds.expires_at)
        return result


class _WaitingForSource(Exception):
    """A chained role cannot be renewed until its source has a valid session."""


def _same_identity(a: Profile, b: Profile) -> bool:
    """Whether two versions of a profile make the same credentials (settings aside)."""
    return (
        a.kind == b.kind
        and a.source_profile == b.source_profile
        and a.mfa_serial == b.mfa_serial
        and a.role_arn == b.role_arn
        and a.external_id == b.external_id
    )


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _valid(creds: Credentials | None, now: datetime) -> bool:
    return creds is not None and creds.is_valid_at(now)
