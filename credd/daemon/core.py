"""The daemon's heart: every profile's state, its renewals, and the answers to credctl.

One asyncio event loop owns all of this state, so there are no locks: STS calls
and file writes run in a small thread pool and come back to the loop. The
adapters (STS, scheduler, writer, clock, notifications) come in as constructor
arguments, so tests drive the whole daemon with fakes and a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from credd import protocol
from credd.adapters.clock import Clock, JumpDetector
from credd.adapters.scheduler import Scheduler
from credd.adapters.servicemanager import status_line
from credd.adapters.sts import StsClient
from credd.credentials import Credentials, format_utc, mask_key_id
from credd.daemon import planner
from credd.daemon.endpoint import Held
from credd.daemon.writebatch import WriteBatcher
from credd.errors import (
    BadInputError,
    CodeRejectedError,
    CreddError,
    Fault,
    NoCredentialsError,
    PolicyError,
    StsTransientError,
)
from credd.policy import Policy, Profile
from credd.states import State
from credd.timetext import format_relative

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every profile is re-checked this often, so a renewal missed during a suspend or a
# clock jump is caught within a minute (SPEC.md "Sleep and clock jumps").
HEARTBEAT_SECONDS = 30.0
# A timer that fires a little early (clock granularity) still counts as due.
DUE_SLACK = timedelta(seconds=1)
# A role whose expiry is within this of its source's was capped to the source: it is
# renewed right after the source, not on a timer of its own.
CAPPED_TOLERANCE = timedelta(seconds=60)
# Subscribers (`credctl prompt`) that fall this far behind are dropped, not waited for.
SUBSCRIBER_QUEUE = 64
# After a write, the writer keeps the file it replaced open for a moment, to carry over a
# late write into it (credd.files.writer.WATCH_SECONDS); it is looked at, and let go, after this.
CARRY_OVER_SECONDS = 0.75


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
    """One profile's live state. Owned by the event loop; never shared across threads."""

    profile: Profile
    state: State = State.PENDING
    credentials: Credentials | None = None
    issued_at: datetime | None = None
    next_refresh_at: datetime | None = None
    last_error: str | None = None
    waiting_since: datetime | None = None
    attempts: int = 0
    renewal: asyncio.Task[None] | None = field(default=None, repr=False)

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
        """A renewal is in flight."""
        return self.renewal is not None and not self.renewal.done()


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
        writer_for: Callable[[Path], Any],
        notifier: Notifier | None = None,
        code_helper: CodeHelper | None = None,
        endpoint: EndpointOps | None = None,
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
        self._writer_for = writer_for
        self._notifier = notifier
        self._code_helper = code_helper
        self._endpoint = endpoint
        self._socket_path = socket_path
        self._pid = pid
        self._version = version
        self._rand = rand
        self._started_at = clock.now()
        self._entries: dict[str, Entry] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._jumps = JumpDetector(clock)
        self._writer = writer_for(policy.credentials_file)
        self._writes = WriteBatcher(self._write_batch, delay=write_delay)
        self._background: set[asyncio.Task[Any]] = set()
        self._verifying: asyncio.Task[None] | None = None
        self._carry_over_timer: asyncio.TimerHandle | None = None
        self._file_seen: tuple[int, int, int, int] | None = None
        self._status_due = False  # a STATUS= send is queued on the loop
        self._stopping = False  # no new renewal may start: its write would be cut off

    # ------------------------------------------------------------------ lifecycle

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._policy

    def entry(self, name: str) -> Entry | None:
        """One profile's live state (for tests and the service layer)."""
        return self._entries.get(name)

    async def start(self) -> None:
        """Read what is on disk and make the first plan: every profile's state becomes known."""
        sections = await self._read_file_quietly()
        for profile in self._policy.profiles:
            self._entries[profile.name] = Entry(profile)
        # Sources come first in the policy's order, so a role sees its source's state.
        for profile in self._policy.profiles:
            held = planner.credentials_from_section(sections.get(profile.name))
            self._plan_initial(self._entries[profile.name], held)
        self._changed()

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
        """One heartbeat: re-plan after a jump; run every renewal that is due and not running."""
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
            if entry.next_refresh_at is not None and entry.next_refresh_at <= now + DUE_SLACK:
                self._due(entry.name)
            elif entry.state is State.FRESH and not _valid(entry.credentials, now):
                # A role that follows its source has no timer of its own; when the source
                # waits for a code past its expiry, the role's credentials run out too.
                self._set(entry, State.EXPIRED, error=entry.last_error)
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.get_running_loop().create_task(self._verify_file())

    async def _verify_file(self) -> None:
        """Put back what another program overwrote in a managed section since the last look.

        The AWS CLI rewrites the file in place with no lock: when it read the file before one
        of credd's renames and writes after it, its write replaces credd's renewal. Its
        identity (inode, size, mtime) is checked each heartbeat; only a change costs a read.
        The other way round, a write into the file credd has just replaced is carried over
        a moment after each write (`_carry_over`).
        """
        signature = await self._in_thread(self._writer.signature)
        if signature is None or signature == self._file_seen:
            return
        self._file_seen = signature
        try:
            sections = await self._in_thread(self._writer.read)
        except CreddError:
            return  # unparseable: the next write reports it in the profile
        now = self._clock.now()
        for entry in self._entries.values():
            creds = entry.credentials
            if entry.state is not State.FRESH or creds is None or not creds.is_valid_at(now):
                continue
            section = sections.get(entry.name, {})
            if (
                section.get("aws_access_key_id") != creds.access_key_id
                or section.get("aws_session_token") != creds.session_token
            ):
                log.warning(
                    "%s was changed in %s by another program; writing it again",
                    entry.name,
                    self._policy.credentials_file,
                )
                self._spawn(self._write_again(entry, creds, at_once=True))

    async def stop(self) -> None:
        """Stop cleanly: cancel renewals, but let a file write that has begun finish."""
        self._stopping = True
        self._scheduler.shutdown()
        if self._carry_over_timer is not None:
            self._carry_over_timer.cancel()
        for entry in self._entries.values():
            if entry.renewal is not None:
                entry.renewal.cancel()
        for task in [*self._background, self._verifying]:
            if task is not None:
                task.cancel()
        await self._writes.drain()
        for queue in list(self._subscribers):
            queue.put_nowait({"event": "shutdown"})

    # ------------------------------------------------------------------ planning

    def _plan_initial(self, entry: Entry, held: Credentials | None) -> None:
        """Plan a profile from the credentials held for it: fresh ones are kept, else due now."""
        profile = entry.profile
        now = self._clock.now()
        problem = self._policy.problems.get(profile.name)
        if problem is not None:
            self._set(entry, State.ERROR, error=problem)
            return
        if held is not None and held.is_valid_at(now):
            entry.credentials = held
            assert held.expires_at is not None
            # The file does not say when they were issued; the policy's duration is the best guess.
            entry.issued_at = min(now, held.expires_at - timedelta(seconds=profile.duration))
            self._set(entry, State.FRESH)
            self._plan_next(entry)
            return
        if held is not None:
            entry.credentials = held  # expired, but shown in status until renewed
        self._due(entry.name, force=True)

    def _plan_next(self, entry: Entry) -> None:
        """Plan the next renewal of fresh credentials."""
        creds = entry.credentials
        assert creds is not None and creds.expires_at is not None and entry.issued_at is not None
        source = self._managed_source(entry.profile)
        if (
            source is not None
            and source.expires_at is not None
            and creds.expires_at >= source.expires_at - CAPPED_TOLERANCE
        ):
            # Capped to its source: renewed right after the source, never on its own.
            self._unschedule(entry)
            return
        when = planner.refresh_at(creds, entry.profile.refresh_before, entry.issued_at)
        self._schedule(entry, when)

    def _is_current(self, entry: Entry) -> bool:
        """False for an entry a reload removed or replaced: its late work must not act."""
        return self._entries.get(entry.name) is entry

    def _schedule(self, entry: Entry, when: datetime) -> None:
        if not self._is_current(entry):
            return
        entry.next_refresh_at = when
        self._scheduler.at(entry.name, when, self._on_timer)

    def _unschedule(self, entry: Entry) -> None:
        entry.next_refresh_at = None
        self._scheduler.cancel(entry.name)

    async def _on_timer(self, name: str) -> None:
        self._due(name)

    def _due(self, name: str, *, force: bool = False) -> None:
        """A profile's renewal time has come (or `force`: now): renew it, or ask for a code."""
        entry = self._entries.get(name)
        if entry is None or entry.busy:
            return
        now = self._clock.now()
        if not force and (entry.next_refresh_at is None or entry.next_refresh_at > now + DUE_SLACK):
            return  # a stale timer: the plan changed since it was set
        self._unschedule(entry)
        if entry.profile.needs_code:
            self._ask_for_code(entry)
        else:
            self._start_renewal(entry, code=None)

    def _ask_for_code(self, entry: Entry) -> None:
        if entry.state is State.AWAITING_CODE:
            return
        entry.waiting_since = self._clock.now()
        self._set(entry, State.AWAITING_CODE)
        event = self._code_needed_event(entry)
        log.info("%s needs an MFA code", entry.name)
        self._broadcast(event)
        if self._code_helper is not None:
            self._spawn(self._use_code_helper(entry, event["message"]))

    def _code_needed_event(self, entry: Entry) -> dict[str, Any]:
        return {
            "event": "code-needed",
            "profile": entry.name,
            "mfa_serial": entry.profile.mfa_serial,
            "message": self._code_message(entry),
            "expires_at": _utc(entry.expires_at),
        }

    def _code_message(self, entry: Entry) -> str:
        expiry = entry.expires_at
        now = self._clock.now()
        if expiry is None or expiry <= now:
            left = "it has no valid session"
        else:
            left = f"its session expires in {format_relative((expiry - now).total_seconds())}"
        return f"credd needs an MFA code for {entry.name} ({entry.profile.mfa_serial}); {left}"

    async def _use_code_helper(self, entry: Entry, message: str) -> None:
        assert self._code_helper is not None
        code = await self._code_helper.code_needed(entry.profile, message)
        if (
            code is None
            or not self._is_current(entry)
            or entry.state is not State.AWAITING_CODE
            or entry.busy
        ):
            return
        try:
            await self._renew_now(entry, code)
        except CreddError as error:
            log.warning("%s: the code command's code was not used: %s", entry.name, error)

    # ------------------------------------------------------------------ renewal

    def _start_renewal(self, entry: Entry, code: str | None) -> asyncio.Task[None]:
        # Set now, not when the task first runs: READY=1 promises every state is known.
        self._set(entry, State.REFRESHING, error=entry.last_error)
        task = asyncio.get_running_loop().create_task(self._renew(entry, code))
        entry.renewal = task
        # A background renewal's failure is recorded in its entry; nobody awaits the task.
        task.add_done_callback(_consume)
        return task

    async def _renew_now(self, entry: Entry, code: str) -> None:
        """Renew with a code and wait for the result (errors go to whoever fed the code).

        A code AWS refuses leaves the profile as it was: still waiting if it waited, or
        fresh with its renewal still planned if the code was fed ahead of time.
        """
        if entry.busy:
            raise BadInputError(
                f"{entry.name} is being renewed right now; wait for the result",
                fault=Fault.NOTHING_TO_RENEW,
            )
        previous, planned = entry.state, entry.next_refresh_at
        self._unschedule(entry)
        try:
            await self._start_renewal(entry, code)
        except (CodeRejectedError, StsTransientError) as error:
            if previous is not State.AWAITING_CODE and planned is not None:
                self._set(entry, previous, error=error.message)
                self._schedule(entry, planned)
            raise

    async def _renew(self, entry: Entry, code: str | None) -> None:
        profile = entry.profile
        try:
            creds = await self._call_sts(profile, code)
        except CodeRejectedError as error:
            self._set(entry, State.AWAITING_CODE, error=error.message)
            log.warning("%s: %s", profile.name, error.message)
            raise
        except StsTransientError as error:
            if code is not None:
                # The code may or may not have reached AWS: never resend it (SPEC.md).
                self._set(entry, State.AWAITING_CODE, error=error.message)
                log.warning("%s: %s; feed a fresh code", profile.name, error.message)
                raise
            self._retry_later(entry, error)
            return
        except _WaitingForSource as waiting:
            valid = entry.credentials is not None and entry.credentials.is_valid_at(
                self._clock.now()
            )
            self._set(entry, State.FRESH if valid else State.EXPIRED, error=str(waiting))
            return
        except CreddError as error:
            self._set(entry, State.ERROR, error=error.message)
            log.error("%s: %s", profile.name, error.message)
            if code is not None:
                raise
            return
        except Exception as error:
            # A bug or an OS failure outside the adapters' own errors: never leave the
            # profile stuck in `refreshing`; say so, and try again later.
            log.exception("%s: unexpected failure while renewing", profile.name)
            message = f"unexpected failure while renewing: {type(error).__name__}"
            self._set(entry, State.ERROR, error=message)
            if code is not None:
                raise CreddError(message) from None
            entry.attempts += 1
            delay = planner.backoff_delay(entry.attempts, rand=self._rand)
            self._schedule(entry, self._clock.now() + timedelta(seconds=delay))
            return
        if not self._is_current(entry):
            return  # removed or replaced by a reload while STS answered
        entry.credentials = creds
        entry.issued_at = self._clock.now()
        entry.attempts = 0
        entry.waiting_since = None
        log.info(
            "%s renewed (%s), expires %s",
            profile.name,
            mask_key_id(creds.access_key_id),
            _utc(creds.expires_at),
        )
        try:
            await self._writes.write(profile.name, creds.as_file_keys(), urgent=code is not None)
        except CreddError as error:
            # Held in memory (credential-process still works) and written again later; the
            # file itself is left exactly as it was.
            self._set(entry, State.ERROR, error=error.message)
            log.error("%s: %s", profile.name, error.message)
            self._spawn(self._write_again(entry, creds))
            self._renew_dependents(entry)
            if code is not None:
                raise
            return
        self._set(entry, State.FRESH)
        self._plan_next(entry)
        if code is not None:
            self._broadcast(
                {
                    "event": "code-resolved",
                    "profile": entry.name,
                    "expires_at": _utc(creds.expires_at),
                }
            )
        self._renew_dependents(entry)

    async def _write_again(
        self, entry: Entry, creds: Credentials, *, at_once: bool = False
    ) -> None:
        """Write the credentials held again, while they are still the ones held.

        After a failed write the first try waits a backoff delay; `at_once` skips it.
        Each further try waits longer.
        """
        failures = 0 if at_once else 1
        while entry.credentials is creds and creds.is_valid_at(self._clock.now()):
            if failures:
                await asyncio.sleep(planner.backoff_delay(failures, rand=self._rand))
            failures += 1
            if entry.credentials is not creds or not self._is_current(entry):
                return  # renewed or reloaded meanwhile: newer credentials have their own write
            try:
                await self._writes.write(entry.name, creds.as_file_keys(), urgent=False)
            except CreddError as error:
                self._set(entry, State.ERROR, error=error.message)
                continue
            self._set(entry, State.FRESH)
            self._plan_next(entry)
            return

    def _renew_dependents(self, entry: Entry) -> None:
        for dependent in self._policy.dependents(entry.name):
            child = self._entries.get(dependent.name)
            if child is not None and not child.busy and child.state is not State.AWAITING_CODE:
                self._unschedule(child)
                self._start_renewal(child, code=None)

    def _retry_later(self, entry: Entry, error: StsTransientError) -> None:
        entry.attempts += 1
        now = self._clock.now()
        delay = planner.backoff_delay(entry.attempts, rand=self._rand)
        when = now + timedelta(seconds=delay)
        valid = entry.credentials is not None and entry.credentials.is_valid_at(now)
        message = f"attempt {entry.attempts} failed: {error.message}; retrying at {_utc(when)}"
        self._set(entry, State.REFRESHING if valid else State.EXPIRED, error=message)
        log.warning("%s: %s", entry.name, message)
        self._schedule(entry, when)

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
        sections = await self._in_thread(self._writer.read)
        keys = planner.long_term_credentials(sections.get(profile.source_profile))
        if keys is None:
            raise CreddError(
                f"source profile {profile.source_profile} has no aws_access_key_id and "
                f"aws_secret_access_key in {self._policy.credentials_file}"
            )
        return keys

    async def _write_batch(self, updates: dict[str, dict[str, str | None]]) -> None:
        await self._in_thread(lambda: self._writer.update(updates))
        self._carry_over_later()

    def _carry_over_later(self) -> None:
        if self._carry_over_timer is None and not self._stopping:
            self._carry_over_timer = asyncio.get_running_loop().call_later(
                CARRY_OVER_SECONDS, self._carry_over_now
            )

    def _carry_over_now(self) -> None:
        self._carry_over_timer = None
        self._spawn(self._carry_over())

    async def _carry_over(self) -> None:
        """Bring back what another program wrote into a file credd has just replaced."""
        try:
            await self._in_thread(self._writer.carry_over)
        except CreddError as error:
            log.error("%s", error.message)
        if self._writer.watching:
            self._carry_over_later()

    async def _read_file_quietly(self) -> Mapping[str, Mapping[str, str]]:
        """The credentials file's sections at start; an unreadable file reads as empty here.

        Its error surfaces at the first write, in the profile that tried it.
        """
        try:
            sections: Mapping[str, Mapping[str, str]] = await self._in_thread(self._writer.read)
        except CreddError as error:
            log.error("%s", error.message)
            return {}
        return sections

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ state & events

    def _set(self, entry: Entry, state: State, *, error: str | None = None) -> None:
        entry.state = state
        entry.last_error = error
        self._changed()

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
        counts: dict[str, int] = {}
        for entry in self._entries.values():
            counts[entry.state.value] = counts.get(entry.state.value, 0) + 1
        waiting = [e for e in self._entries.values() if e.state is State.AWAITING_CODE]
        waiting.sort(key=lambda e: e.waiting_since or self._started_at)  # longest first
        return status_line(counts, [e.name for e in waiting])

    def _broadcast(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                log.warning("dropped a credctl prompt that stopped reading")

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of events for `credctl prompt`; it starts with every code already awaited."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        for entry in self._entries.values():
            if entry.state is State.AWAITING_CODE:
                queue.put_nowait(self._code_needed_event(entry))
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Forget a subscriber that went away."""
        self._subscribers.discard(queue)

    # ------------------------------------------------------------------ requests

    async def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one decoded request (any op but subscribe) with a reply object."""
        op = request["op"]
        try:
            if self._stopping and op in ("token", "refresh", "reload"):
                raise CreddError("credd is stopping; try again once it has restarted")
            if op == "status":
                return protocol.ok(self.status())
            if op == "ping":
                return protocol.ok({"pid": self._pid})
            if op == "token":
                code = protocol.validate_code(request.get("code"))
                return protocol.ok(
                    await self.feed_code(code, protocol.optional_str(request, "profile"))
                )
            if op == "refresh":
                return protocol.ok(await self.refresh(protocol.str_list(request, "profiles")))
            if op == "reload":
                return protocol.ok(await self.reload())
            if op == "credential-process":
                name = protocol.optional_str(request, "profile")
                return protocol.ok(self.credential_process(name or ""))
            if op in protocol.ENDPOINT_OPS and self._endpoint is not None:
                return protocol.ok(await self._endpoint.handle(op, request))
            raise BadInputError(f"op {op!r} cannot be used here", fault=Fault.UNKNOWN_OP)
        except CreddError as error:
            return protocol.failure_from(error)

    def status(self) -> dict[str, Any]:
        """The `credctl status --json` object (SPEC.md)."""
        return {
            "daemon": {
                "pid": self._pid,
                "version": self._version,
                "started_at": _utc(self._started_at),
                "policy": str(self._policy.path),
                "credentials_file": str(self._policy.credentials_file),
                "endpoint": self._endpoint.url if self._endpoint is not None else None,
            },
            "profiles": [
                {
                    "name": e.name,
                    "kind": e.profile.kind.value,
                    "state": e.state.value,
                    "expires_at": _utc(e.expires_at),
                    "next_refresh_at": _utc(e.next_refresh_at),
                    "source_profile": e.profile.source_profile,
                    "mfa_serial": e.profile.mfa_serial,
                    "last_error": e.last_error,
                }
                for e in self._entries.values()
            ],
        }

    async def feed_code(self, code: str, name: str | None) -> dict[str, Any]:
        """Use a code for `name`, or for the profile that waited longest (SPEC.md `token`)."""
        entry = self._code_target(name)
        await self._renew_now(entry, code)
        return {
            "profile": entry.name,
            "expires_at": _utc(entry.expires_at),
            "waiting": [e.name for e in self._entries.values() if e.state is State.AWAITING_CODE],
        }

    def _code_target(self, name: str | None) -> Entry:
        if name is not None:
            entry = self._entries.get(name)
            if entry is None:
                raise BadInputError(
                    f"no profile {name!r} in the policy", fault=Fault.UNKNOWN_PROFILE
                )
            if not entry.profile.needs_code:
                raise BadInputError(
                    f"{name} takes no MFA code (a role renewed on its source)",
                    fault=Fault.NOT_AN_MFA_PROFILE,
                )
            return entry
        candidates = [
            planner.Waiting(e.name, e.state, e.waiting_since, e.expires_at)
            for e in self._entries.values()
            if e.profile.needs_code and e.state is not State.ERROR
        ]
        target = planner.pick_code_target(candidates)
        if target is None:
            raise BadInputError(
                "no profile takes an MFA code right now", fault=Fault.NOTHING_TO_RENEW
            )
        return self._entries[target]

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
        for entry in chosen:
            if entry.profile.needs_code:
                self._unschedule(entry)
                self._ask_for_code(entry)
                awaiting.append(entry.name)
            elif entry.busy:
                assert entry.renewal is not None
                tasks[entry.name] = entry.renewal
            else:
                self._unschedule(entry)
                tasks[entry.name] = self._start_renewal(entry, code=None)
        if tasks:
            await asyncio.wait(tasks.values())
        # The entries chosen above, even if a reload replaced them meanwhile.
        done = [e for e in chosen if e.name in tasks]
        renewed = [e.name for e in done if e.state is State.FRESH]
        failed = [
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
            self._apply_policy(policy)
        finally:
            if self._notifier is not None:
                self._notifier.ready(self.status_text())
        log.info("policy reloaded: %d profiles", len(policy.profiles))
        return {"profiles": len(policy.profiles), "warnings": list(policy.warnings)}

    def _apply_policy(self, policy: Policy) -> None:
        old = self._entries
        if policy.credentials_file != self._policy.credentials_file:
            self._writer.close()
            self._writer = self._writer_for(policy.credentials_file)
        self._policy = policy
        self._entries = {}
        new_names = {p.name for p in policy.profiles}
        for name, entry in old.items():
            if name not in new_names:
                self._unschedule(entry)
                if entry.renewal is not None:
                    entry.renewal.cancel()
        fresh_plans: list[Entry] = []
        for profile in policy.profiles:
            kept = old.get(profile.name)
            if kept is not None and kept.profile == profile:
                self._entries[profile.name] = kept
                continue
            if kept is not None:
                self._unschedule(kept)
                if kept.renewal is not None:
                    kept.renewal.cancel()
            entry = Entry(profile)
            if kept is not None and kept.profile.kind == profile.kind:
                entry.credentials, entry.issued_at = kept.credentials, kept.issued_at
            self._entries[profile.name] = entry
            fresh_plans.append(entry)
        for entry in fresh_plans:
            self._plan_initial(entry, entry.credentials)
        self._changed()

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
            raise BadInputError(f"no profile {name!r} in the policy", fault=Fault.UNKNOWN_PROFILE)
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
            result["Expiration"] = _utc(creds.expires_at)
        return result


class _WaitingForSource(Exception):
    """A chained role cannot be renewed until its source has a valid session."""


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _valid(creds: Credentials | None, now: datetime) -> bool:
    return creds is not None and creds.is_valid_at(now)


def _utc(when: datetime | None) -> str | None:
    return format_utc(when) if when is not None else None
