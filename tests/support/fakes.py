"""Hand-written fakes for driving `Daemon` in-process: a clock, a scheduler, STS and a file.

With these a twelve-hour schedule runs in milliseconds: the test moves the
clock, then fires what the fake scheduler holds as due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from credd.credentials import Credentials
from credd.daemon.core import Daemon
from credd.errors import CreddError, StsTransientError
from credd.files.lookup import AwsFiles
from credd.files.writer import FileHealth
from credd.policy import Policy, parse_policy

T = TypeVar("T")

START = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)

LONG_TERM = {"aws_access_key_id": "AKIAFAKELONGTERM0001", "aws_secret_access_key": "longTermSecret"}


class FakeClock:
    """Wall, monotonic and boot clocks that move only when told."""

    def __init__(self, start: datetime = START) -> None:
        self._wall = start
        self._mono = 1000.0
        self._boot = 1000.0

    def now(self) -> datetime:
        """The fake wall clock."""
        return self._wall

    def monotonic(self) -> float:
        """The fake monotonic clock."""
        return self._mono

    def boottime(self) -> float:
        """The fake boot clock."""
        return self._boot

    def advance(self, seconds: float) -> None:
        """Time passes normally: every clock moves together."""
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds
        self._boot += seconds

    def suspend(self, seconds: float) -> None:
        """The machine sleeps: wall and boot clocks move, the monotonic clock stands still."""
        self._wall += timedelta(seconds=seconds)
        self._boot += seconds

    def jump(self, seconds: float) -> None:
        """Someone sets the wall clock: only it moves."""
        self._wall += timedelta(seconds=seconds)


class FakeScheduler:
    """Holds one job per name; `run_due()` fires those whose time has come on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.jobs: dict[str, tuple[datetime, Callable[[str], Awaitable[None]]]] = {}
        self.wakeups = 0

    def start(self) -> None:
        """Nothing to start."""

    def at(self, name: str, when: datetime, callback: Callable[[str], Awaitable[None]]) -> None:
        """Plan (or re-plan) `name`."""
        self.jobs[name] = (when, callback)

    def cancel(self, name: str) -> None:
        """Forget `name`."""
        self.jobs.pop(name, None)

    def wakeup(self) -> None:
        """Count re-plans after a jump."""
        self.wakeups += 1

    def shutdown(self) -> None:
        """Forget everything."""
        self.jobs.clear()

    def when(self, name: str) -> datetime | None:
        """When `name` is planned, if it is."""
        job = self.jobs.get(name)
        return job[0] if job else None

    async def run_due(self) -> list[str]:
        """Fire every job due now (as APScheduler would), then let the loop settle."""
        now = self._clock.now()
        due = sorted((w, n) for n, (w, _) in self.jobs.items() if w <= now)
        for _, name in due:
            _, callback = self.jobs.pop(name)
            await callback(name)
        await settle()
        return [name for _, name in due]


class InlineExecutor(Executor):
    """Runs submitted work at once, in the caller's thread: deterministic tests."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run `fn` now and return a completed future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


class HeldExecutor(Executor):
    """Holds every submitted call until the test runs it: STS calls and writes in flight.

    A held call counts as under way (its request may have reached AWS): it runs even if
    the caller has given up on it, as a worker thread would.
    """

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[[], Any]]] = []
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Hold `fn` until `run` or `run_all`."""
        self.submitted += 1
        future: Future[T] = Future()
        self.held.append((future, lambda: fn(*args, **kwargs)))
        return future

    def run(self, index: int) -> None:
        """Run the held call at `index` (its result goes to a caller still waiting)."""
        future, call = self.held.pop(index)
        running = future.set_running_or_notify_cancel()
        try:
            result = call()
        except BaseException as error:
            if running:
                future.set_exception(error)
        else:
            if running:
                future.set_result(result)

    def run_all(self) -> None:
        """Run every held call, oldest first."""
        while self.held:
            self.run(0)


@dataclass
class StsCallRecord:
    """One call the fake STS received (no secrets kept)."""

    action: str
    profile_key: str  # the access key id the call was signed with
    duration: int
    code: str | None
    name: str  # the MFA serial (GetSessionToken) or the role session name (AssumeRole)
    at: datetime  # on the fake clock
    role_arn: str | None = None


@dataclass
class MemorySts:
    """An in-memory StsClient: issues credentials that last `duration` from the fake clock.

    `fail` holds exceptions to raise, in order, for the next calls; while `failing` is
    set, every call is throttled.
    """

    clock: FakeClock
    calls: list[StsCallRecord] = field(default_factory=list)
    fail: list[CreddError] = field(default_factory=list)
    failing: bool = False
    counter: int = 0

    def count(self, name: str) -> int:
        """Calls made for an MFA serial or a role session name (`credd-<profile>`)."""
        return sum(1 for c in self.calls if c.name == name)

    def _issue(self, duration: int) -> Credentials:
        if self.fail:
            raise self.fail.pop(0)
        if self.failing:
            raise StsTransientError("STS failed (temporary): Throttling: Rate exceeded")
        self.counter += 1
        return Credentials(
            f"ASIAFAKE{self.counter:012d}",
            f"secret{self.counter}",
            f"token{self.counter}",
            self.clock.now() + timedelta(seconds=duration),
        )

    def get_session_token(
        self, *, source: Credentials, region: str, serial: str, code: str, duration: int
    ) -> Credentials:
        """GetSessionToken."""
        self.calls.append(
            StsCallRecord(
                "GetSessionToken", source.access_key_id, duration, code, serial, self.clock.now()
            )
        )
        return self._issue(duration)

    def assume_role(
        self,
        *,
        source: Credentials,
        region: str,
        role_arn: str,
        session_name: str,
        duration: int,
        external_id: str | None = None,
        serial: str | None = None,
        code: str | None = None,
    ) -> Credentials:
        """AssumeRole."""
        self.calls.append(
            StsCallRecord(
                "AssumeRole",
                source.access_key_id,
                duration,
                code,
                session_name,
                self.clock.now(),
                role_arn,
            )
        )
        return self._issue(duration)


class MemoryWriter:
    """A credentials 'file' in memory: sections, plus every batch written."""

    def __init__(self, sections: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.sections: dict[str, dict[str, str]] = {
            k: dict(v) for k, v in (sections or {"default": LONG_TERM}).items()
        }
        self.batches: list[list[str]] = []
        self.fail: list[CreddError] = []
        self.changes = 0  # stands in for the file's inode, size and mtime
        self.problem: str | None = None  # what `inspect` finds wrong, if anything
        self.carry_overs = 0

    def signature(self) -> tuple[int, int, int, int]:
        """Changes whenever the 'file' does."""
        return (0, 0, 0, self.changes)

    def inspect(self) -> FileHealth:
        """The 'file' as credd looks at it before use: `problem`, or each section's keys."""
        if self.problem is not None:
            return FileHealth(Path("/memory/credentials"), self.problem)
        keys = {name: frozenset(values) for name, values in self.sections.items()}
        return FileHealth(Path("/memory/credentials"), keys=keys)

    def inspect_and_read(self) -> tuple[FileHealth, dict[str, dict[str, str]]]:
        """`inspect`, and the sections when there is no problem."""
        health = self.inspect()
        return health, {} if health.problem is not None else self.read()

    def break_file(self, problem: str | None) -> None:
        """Make the 'file' unusable (a problem with its fix), or usable again (None)."""
        self.problem = problem
        self.changes += 1

    def overwrite(self, section: str, keys: Mapping[str, str]) -> None:
        """Another program rewrites a section (as `aws configure set` does)."""
        self.sections[section] = dict(keys)
        self.changes += 1

    watching = False  # nothing is ever replaced under another program here
    closed = False

    def close(self) -> None:
        """The daemon has moved to another file."""
        self.closed = True

    def carry_over(self) -> list[str]:
        """Nothing to carry over; counted."""
        self.carry_overs += 1
        return []

    def read(self) -> dict[str, dict[str, str]]:
        """The sections."""
        return {k: dict(v) for k, v in self.sections.items()}

    def update(self, updates: Mapping[str, Mapping[str, str | None]]) -> None:
        """Apply one batch (or raise the next programmed failure)."""
        if self.fail:
            raise self.fail.pop(0)
        self.batches.append(sorted(updates))
        self.changes += 1
        for name, keys in updates.items():
            section = self.sections.setdefault(name, {})
            for key, value in keys.items():
                if value is None:
                    section.pop(key, None)
                else:
                    section[key] = value


def make_policy(
    text: str,
    sections: Mapping[str, Mapping[str, str]] | None = None,
    *,
    in_keyring: Callable[[str], bool] = lambda name: False,
) -> Policy:
    """Parse a policy against in-memory AWS files (`default` holds long-term keys)."""
    aws = AwsFiles.from_sections(
        config_path=Path("/nonexistent/config"),
        credentials_path=Path("/nonexistent/credentials"),
        config_sections={},
        credentials_sections=sections or {"default": LONG_TERM},
        in_keyring=in_keyring,
    )
    return parse_policy(text, path=Path("/policy.yaml"), aws=aws, env={})


@dataclass
class Rig:
    """A Daemon wired to fakes."""

    daemon: Daemon
    clock: FakeClock
    scheduler: FakeScheduler
    sts: MemorySts
    writer: MemoryWriter
    notes: list[str]


class RecordingNotifier:
    """Records the STATUS lines and reload/ready calls."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes

    def status(self, text: str) -> None:
        """STATUS=."""
        self.notes.append(f"STATUS={text}")

    def reloading(self) -> None:
        """RELOADING=1."""
        self.notes.append("RELOADING=1")

    def ready(self, status: str) -> None:
        """READY=1."""
        self.notes.append(f"READY=1 {status}")


def make_rig(
    policy_text: str,
    writer: MemoryWriter | None = None,
    *,
    executor: Executor | None = None,
    sts: MemorySts | None = None,
    clock: FakeClock | None = None,
) -> Rig:
    """A daemon on fakes, not yet started (call `await rig.daemon.start()`)."""
    clock = clock or FakeClock()
    scheduler = FakeScheduler(clock)
    sts = sts or MemorySts(clock)
    writer = writer or MemoryWriter()
    notes: list[str] = []
    policy = make_policy(policy_text, {"default": LONG_TERM})
    daemon = Daemon(
        policy=policy,
        load_policy=lambda: policy,
        sts=sts,
        clock=clock,
        scheduler=scheduler,
        executor=executor or InlineExecutor(),
        writer_for=lambda _path: writer,
        notifier=RecordingNotifier(notes),
        write_delay=0,
        rand=lambda: 1.0,  # backoff at its ceiling: 5 s, 10 s, 20 s ...
    )
    return Rig(daemon, clock, scheduler, sts, writer, notes)


async def settle() -> None:
    """Let every task the daemon started run to completion."""
    for _ in range(50):
        await asyncio.sleep(0)
