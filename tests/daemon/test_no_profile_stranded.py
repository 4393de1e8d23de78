"""The daemon's promise, checked over random event sequences (SPEC.md "No profile is ever
stranded").

A hypothesis `RuleBasedStateMachine` drives the real `Daemon` on its fakes: a fake
clock and scheduler, an in-memory STS and file whose faults the rules inject, and an
executor that holds every STS call and write until a rule lets it run, so calls are
in flight while codes, faults, reloads, suspends, stalled subscribers and stops
happen. After every step it checks that:

- every profile has valid credentials with a renewal planned, a renewal (or write)
  in flight, a retry planned, an open request for a code that the person was told
  about, or a policy problem shown in status; or, for a chained role, follows a
  source that has one of these and renews before the role runs out;
- no code is ever sent to STS twice;
- a code AWS accepted is never lost: the profile holds those credentials or newer
  ones, unless a reload removed it or changed what it makes;
- no secret, token or code appears in status, STATUS=, events or logs.

`make test` runs a bounded number of examples; set CREDD_PROPERTY_EXAMPLES for a
longer run (e.g. 2000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from support.fakes import (
    LONG_TERM,
    FakeClock,
    HeldExecutor,
    MemorySts,
    MemoryWriter,
    make_policy,
    make_rig,
)

from credd.adapters.keyring import Keyring, StoredKey
from credd.credentials import Credentials
from credd.daemon.core import Entry
from credd.errors import (
    CodeRejectedError,
    CreddError,
    FileWriteError,
    KeyringError,
    StsError,
    StsTransientError,
)
from credd.policy import Profile

EXAMPLES = int(os.environ.get("CREDD_PROPERTY_EXAMPLES", "300"))

BASE = """
version: 1
defaults: {refresh_before: 15m}
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
    duration: 2h
  admin:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/Admin
    duration: 1h
  ops:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops
    duration: 1h
    refresh_before: 10m
"""
POLICIES = {
    "base": BASE,
    "changed": BASE.replace("duration: 2h", "duration: 3h").replace(
        "refresh_before: 10m", "refresh_before: 20m"
    ),
    "removed": BASE.split("  admin:", maxsplit=1)[0] + "  ops:" + BASE.split("  ops:")[1],
    "moved-device": BASE.replace("mfa/x", "mfa/y"),
    "added": BASE
    + """  session-z:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/z
    duration: 1h
  viewer:
    source_profile: session-z
    role_arn: arn:aws:iam::123456789012:role/Viewer
    duration: 30m
""",
    "lost-source": BASE
    + """  lost:
    source_profile: nowhere
    role_arn: arn:aws:iam::123456789012:role/Lost
    duration: 1h
""",
}
CANARY = "CANARYSECRET"


class CanarySts(MemorySts):
    """Issues credentials whose secret and token are canaries; records what each call got."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.issued: dict[int, str | None] = {}  # call index -> access key id (None: failed)
        self.fail_next: dict[str, list[Exception]] = {"GetSessionToken": [], "AssumeRole": []}

    def _issue(self, duration: int) -> Credentials:
        index = len(self.calls) - 1
        self.issued[index] = None
        planned = self.fail_next[self.calls[index].action]
        if planned:
            raise planned.pop(0)
        issued = super()._issue(duration)
        self.issued[index] = issued.access_key_id
        return Credentials(
            issued.access_key_id,
            f"{CANARY}{self.counter}",
            f"{CANARY}TOKEN{self.counter}",
            issued.expires_at,
        )


class Told:
    """A code helper (notify / code_command) that records whom it told."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def code_needed(self, profile: Profile, message: str) -> str | None:
        self.names.append(profile.name)
        return None


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class LockableKeyring(Keyring):
    """A keyring that holds the source's keys (the file has none) and that a rule locks and
    unlocks."""

    def __init__(self) -> None:
        super().__init__()
        self.locked = False

    def get(self, profile: str) -> StoredKey | None:
        if self.locked:
            raise KeyringError(f"cannot read credd/{profile} in the keyring: it is locked")
        if profile != "default":
            return None
        return StoredKey(LONG_TERM["aws_access_key_id"], LONG_TERM["aws_secret_access_key"])


class NoProfileStranded(RuleBasedStateMachine):
    """Random sequences of everything that can happen to a running daemon."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.sts = CanarySts(self.clock)
        self.writer = MemoryWriter({"default": {"region": "eu-west-1"}})  # keys: the keyring
        self.executor = HeldExecutor()
        self.rig = make_rig(
            BASE, self.writer, executor=self.executor, sts=self.sts, clock=self.clock
        )
        self.daemon = self.rig.daemon
        self.helper = Told()
        self.daemon._code_helper = self.helper
        self.keyring = LockableKeyring()
        self.daemon._keyring = self.keyring
        self.codes = 900000
        self.tasks: list[asyncio.Task[Any]] = []
        self.told: set[str] = set()
        self.moot_codes_upto: dict[str, int] = {}  # per MFA serial: codes a reload made moot
        self.stopped = False
        self.logs = LogCapture()
        logging.getLogger("credd").addHandler(self.logs)
        logging.getLogger("credd").setLevel(logging.DEBUG)
        self.reader: asyncio.Queue[dict[str, Any]] | None = None
        self.events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ plumbing

    def settle(self) -> None:
        async def spin() -> None:
            for _ in range(30):
                await asyncio.sleep(0)

        self.loop.run_until_complete(spin())
        self.observe()

    def drive(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` to its end, letting only the calls it makes run (newest first)."""
        task = self.loop.create_task(work)
        for _ in range(200):
            self.settle()
            if task.done():
                break
            if self.executor.held:
                self.executor.run(-1)
        assert task.done(), "the request did not finish"
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert isinstance(error, CreddError), repr(error)

    def observe(self) -> None:
        """Drain the subscriber's events and the helper's record into `told`."""
        if self.reader is not None:
            while not self.reader.empty():
                event = self.reader.get_nowait()
                self.events.append(event)
                if event.get("event") == "code-needed":
                    self.told.add(event["profile"])
        while self.helper.names:
            self.told.add(self.helper.names.pop())
        for entry in self.daemon.entries():
            if not entry.asked:
                self.told.discard(entry.name)

    def teardown(self) -> None:
        logging.getLogger("credd").removeHandler(self.logs)
        self.loop.run_until_complete(_cancel_all())
        self.loop.close()

    # ------------------------------------------------------------------ rules

    @initialize()
    def start(self) -> None:
        self.drive(self.daemon.start())
        self.reader = self.daemon.subscribe()
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule(
        profile=st.sampled_from([None, "session-x", "session-z"]),
        outcome=st.sampled_from(["accepted", "rejected", "keys-refused", "lost", "accepted"]),
    )
    def feed_code(self, profile: str | None, outcome: str) -> None:
        """A code arrives, from credctl token; AWS takes it, refuses it or the keys, or the
        answer is lost in transit."""
        self.codes += 1
        if outcome != "accepted":
            self.sts.fail_next["GetSessionToken"].append(_FAULTS[outcome])
        self.tasks.append(
            self.loop.create_task(_swallow(self.daemon.feed_code(str(self.codes), profile)))
        )
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule(kind=st.sampled_from(["throttled", "keys-refused", "unexpected"]))
    def sts_fault(self, kind: str) -> None:
        """The next AssumeRole fails."""
        self.sts.fail_next["AssumeRole"].append(_FAULTS[kind])

    @precondition(lambda self: not self.stopped)
    @rule(times=st.integers(1, 5))
    def write_fault(self, times: int) -> None:
        """The disk fills up for the next few writes."""
        self.writer.fail.extend([FileWriteError("/x/credentials: No space left")] * times)

    @rule()
    def disk_recovers(self) -> None:
        self.writer.fail.clear()

    @rule()
    def keyring_locks(self) -> None:
        """The screen locks, and the keyring with it: the keys cannot be read."""
        self.keyring.locked = True

    @rule()
    def keyring_unlocks(self) -> None:
        self.keyring.locked = False

    @precondition(lambda self: bool(self.executor.held))
    @rule(data=st.data())
    def a_call_returns(self, data: st.DataObject) -> None:
        """One STS call or write in flight completes (in any order)."""
        index = data.draw(st.integers(0, len(self.executor.held) - 1))
        self.executor.run(index)
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule(seconds=st.sampled_from([1, 30, 300, 900, 1800, 3600, 7200]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.loop.run_until_complete(self.rig.scheduler.run_due())
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule()
    def heartbeat(self) -> None:
        self.loop.run_until_complete(_call(self.daemon.tick))
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule(seconds=st.sampled_from([600, 7200, 86400]), jump=st.booleans())
    def suspend_or_jump(self, seconds: int, jump: bool) -> None:
        if jump:
            self.clock.jump(seconds)
        else:
            self.clock.suspend(seconds)
        self.loop.run_until_complete(_call(self.daemon.tick))
        self.loop.run_until_complete(self.rig.scheduler.run_due())
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule(name=st.sampled_from(sorted(POLICIES)))
    def reload(self, name: str) -> None:
        """SIGHUP with another policy: profiles added, changed, removed."""
        policy = make_policy(POLICIES[name])
        before = {e.name: e.profile for e in self.daemon.entries()}
        after = {p.name: p for p in policy.profiles}
        for profile_name, old in before.items():
            new = after.get(profile_name)
            if old.mfa_serial and (new is None or not _same_identity(old, new)):
                # Codes fed so far may come back after the profile they were for is gone.
                self.moot_codes_upto[old.mfa_serial] = self.codes
        self.daemon._load_policy = lambda: policy
        self.drive(self.daemon.reload())

    @precondition(lambda self: not self.stopped)
    @rule(names=st.sampled_from([[], ["session-x"], ["admin"], ["ops", "admin"]]))
    def refresh(self, names: list[str]) -> None:
        known = {e.name for e in self.daemon.entries()}
        if not set(names) <= known:
            return
        self.tasks.append(self.loop.create_task(_swallow(self.daemon.refresh(names))))
        self.settle()

    @precondition(lambda self: not self.stopped)
    @rule()
    def a_prompt_stalls(self) -> None:
        """A `credctl prompt` stops reading: its queue fills up."""
        queue = self.daemon.subscribe()
        while not queue.full():
            queue.put_nowait({"event": "noise"})

    @precondition(lambda self: not self.stopped)
    @rule()
    def stop(self) -> None:
        """SIGTERM: the daemon stops cleanly whatever is in flight."""
        self.stopped = True
        self.drive(self.daemon.stop())
        assert self.events[-1:] == [{"event": "shutdown"}]
        submitted = self.executor.submitted
        self.clock.advance(86400)
        self.loop.run_until_complete(self.rig.scheduler.run_due())
        self.loop.run_until_complete(_call(self.daemon.tick))
        self.settle()
        assert self.executor.submitted == submitted, "no work starts once stopped"

    # ------------------------------------------------------------------ invariants

    @invariant()
    def no_profile_is_stranded(self) -> None:
        if self.stopped or self.reader is None:
            return
        entries = {e.name: e for e in self.daemon.entries()}
        for entry in entries.values():
            if self._covered(entry):
                continue
            source = entries.get(entry.profile.source_profile or "")
            assert source is not None and entry.profile.source_is_managed, self._why(entry)
            assert self._covered(source), self._why(entry, source)
            now = self.clock.now()
            reach = max(entry.expires_at or now, now) + timedelta(seconds=900 + 60)
            planned = source.next_refresh_at
            assert planned is None or planned <= reach, self._why(entry, source)

    def _covered(self, entry: Entry) -> bool:
        name = entry.name
        if entry.busy or self.daemon.blocked(name) is not None:
            return True
        if entry.next_refresh_at is not None:
            assert self.rig.scheduler.when(name) == entry.next_refresh_at, self._why(entry)
            return True
        return entry.asked and name in self.told

    def _why(self, entry: Entry, source: Entry | None = None) -> str:
        text = f"stranded: {entry!r}"
        return text + (f" following {source!r}" if source is not None else "")

    @invariant()
    def no_code_is_sent_twice(self) -> None:
        codes = [c.code for c in self.sts.calls if c.code is not None]
        assert len(codes) == len(set(codes)), codes

    @invariant()
    def an_accepted_code_is_never_lost(self) -> None:
        if self.stopped:
            return
        for index, call in enumerate(self.sts.calls):
            if call.code is None or call.action != "GetSessionToken":
                continue
            owner = [e for e in self.daemon.entries() if e.profile.mfa_serial == call.name]
            if not owner or owner[0].busy:
                continue
            entry = owner[0]
            if int(call.code) <= self.moot_codes_upto.get(call.name, 0):
                continue
            issued = self.sts.issued.get(index)
            if issued is None:
                continue  # AWS refused it
            held = entry.credentials
            assert held is not None, f"{entry.name} lost the credentials of code {call.code}"
            assert held.access_key_id >= issued, f"{entry.name} holds older credentials"

    @invariant()
    def no_secret_leaves_its_place(self) -> None:
        shown = [
            repr(self.daemon.status()),
            self.daemon.status_text(),
            repr(self.events),
            *self.logs.lines,
            *(repr(e) for e in self.daemon.entries()),
        ]
        codes = {c.code for c in self.sts.calls if c.code}
        for text in shown:
            assert CANARY not in text, text
            assert "longTermSecret" not in text, text
            for code in codes:
                assert code not in text, text


_FAULTS: dict[str, Exception] = {
    "rejected": CodeRejectedError("the code was not accepted"),
    "lost": StsTransientError("STS failed (temporary): read timeout"),
    "throttled": StsTransientError("STS failed (temporary): Throttling"),
    "keys-refused": StsError("STS refused: InvalidClientTokenId"),
    "unexpected": RuntimeError("boom"),
}


def _same_identity(a: Profile, b: Profile) -> bool:
    return (a.kind, a.source_profile, a.mfa_serial, a.role_arn) == (
        b.kind,
        b.source_profile,
        b.mfa_serial,
        b.role_arn,
    )


async def _swallow(work: Coroutine[Any, Any, Any]) -> None:
    """A request whose outcome the person sees; the invariants judge the daemon's side."""
    with contextlib.suppress(CreddError):
        await work


async def _cancel_all() -> None:
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _call(function: Any) -> None:
    """Call `function` on the running loop (the heartbeat starts tasks)."""
    function()


NoProfileStranded.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestNoProfileStranded = NoProfileStranded.TestCase
