"""Small fakes of the reliability suite's own, to drive `Daemon` in-process on a fake clock.

Independent of tests/support/fakes.py on purpose: these model the worst case
the daemon must survive (a scheduler that sleeps through a suspend and fires
nothing until told), and record every STS call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from credd.awsfiles import AwsFiles
from credd.credentials import Credentials
from credd.daemon import Daemon
from credd.errors import StsTransientError
from credd.policy import Policy, parse_policy
from credd.scheduler import Callback

T = TypeVar("T")

T0 = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
KEYS = {"aws_access_key_id": "AKIAFAKERELIABLE0001", "aws_secret_access_key": "fakeLongTerm"}

POLICY = """\
version: 1
defaults:
  region: us-east-1
  refresh_before: 15m
profiles:
  session-alice:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/alice
    duration: 1h
  chained:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/Chained
    duration: 30m
  solo:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Solo
    duration: 1h
"""


class Clocks:
    """Wall, monotonic and boot clocks that move only when told."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0
        self.boot = 1000.0

    def now(self) -> datetime:
        """The wall clock."""
        return self.wall

    def monotonic(self) -> float:
        """CLOCK_MONOTONIC: stops during a suspend."""
        return self.mono

    def boottime(self) -> float:
        """CLOCK_BOOTTIME: counts a suspend."""
        return self.boot

    def run(self, seconds: float) -> None:
        """Time passes with the machine awake."""
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
        self.boot += seconds

    def suspend(self, seconds: float) -> None:
        """The machine sleeps: wall and boot move, monotonic does not."""
        self.wall += timedelta(seconds=seconds)
        self.boot += seconds

    def set_wall(self, seconds: float) -> None:
        """Someone sets the wall clock `seconds` forward (or back)."""
        self.wall += timedelta(seconds=seconds)


@dataclass
class SleepyScheduler:
    """Holds one job per name; fires only in `fire_due`, like APScheduler while awake."""

    clock: Clocks
    jobs: dict[str, tuple[datetime, Callback]] = field(default_factory=dict)
    wakeups: int = 0

    def start(self) -> None:
        """Nothing to start."""

    def at(self, name: str, when: datetime, callback: Callback) -> None:
        """Plan (or re-plan) `name`."""
        self.jobs[name] = (when, callback)

    def cancel(self, name: str) -> None:
        """Forget `name`."""
        self.jobs.pop(name, None)

    def wakeup(self) -> None:
        """Count the daemon's nudges after a jump."""
        self.wakeups += 1

    def shutdown(self) -> None:
        """Nothing to stop."""

    def fire_due(self) -> None:
        """Run every job whose time has come by the wall clock."""
        for name, (when, callback) in list(self.jobs.items()):
            if when <= self.clock.now():
                del self.jobs[name]
                asyncio.get_running_loop().create_task(callback(name))


@dataclass
class Call:
    """One STS call."""

    action: str
    name: str
    at: datetime
    code: str | None


class CountingSts:
    """STS that issues credentials for `duration` from the fake clock, or fails when told."""

    def __init__(self, clock: Clocks) -> None:
        self.clock = clock
        self.calls: list[Call] = []
        self.failing = False
        self._ids = itertools.count(1)

    def _issue(self, duration: int) -> Credentials:
        if self.failing:
            raise StsTransientError("STS failed (temporary): Throttling: Rate exceeded")
        n = next(self._ids)
        return Credentials(
            f"ASIAFAKE{n:012d}",
            f"secret{n}",
            f"token{n}",
            self.clock.now() + timedelta(seconds=duration),
        )

    def get_session_token(
        self, *, source: Credentials, region: str, serial: str, code: str, duration: int
    ) -> Credentials:
        """GetSessionToken."""
        self.calls.append(Call("GetSessionToken", serial, self.clock.now(), code))
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
        self.calls.append(Call("AssumeRole", session_name, self.clock.now(), code))
        return self._issue(duration)

    def count(self, session_name: str) -> int:
        """Calls made for a role's session name (`credd-<profile>`)."""
        return sum(1 for c in self.calls if c.name == session_name)


class MemoryFile:
    """The credentials file as a dict; `writes` counts the rewrites."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, str]] = {"default": dict(KEYS)}
        self.writes = 0

    def read(self) -> dict[str, dict[str, str]]:
        """The sections."""
        return {k: dict(v) for k, v in self.sections.items()}

    def update(self, updates: Mapping[str, Mapping[str, str | None]]) -> None:
        """Apply updates."""
        self.writes += 1
        for name, keys in updates.items():
            section = self.sections.setdefault(name, {})
            for key, value in keys.items():
                if value is None:
                    section.pop(key, None)
                else:
                    section[key] = value


class InlineExecutor(Executor):
    """Runs each call at once, on the loop's thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run `fn` now; its result or exception in a done Future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


@dataclass
class Rig:
    """A daemon on fakes, and the fakes."""

    daemon: Daemon
    clock: Clocks
    scheduler: SleepyScheduler
    sts: CountingSts
    file: MemoryFile

    def state(self, name: str) -> str:
        """A profile's state."""
        entry = self.daemon.entry(name)
        assert entry is not None
        return entry.state.value

    async def settle(self) -> None:
        """Let every renewal and write that is under way finish."""
        for _ in range(200):
            await asyncio.sleep(0)

    async def heartbeat(self) -> None:
        """One heartbeat, as `Daemon.heartbeat` does every 30 s, then settle."""
        self.daemon.tick()
        await self.settle()

    async def awake(self, seconds: float, *, step: float = 30.0) -> None:
        """Time passes awake: the scheduler fires what is due and the heartbeat beats."""
        left = seconds
        while left > 0:
            self.clock.run(min(step, left))
            left -= step
            self.scheduler.fire_due()
            await self.settle()
            await self.heartbeat()


def make_rig(policy_text: str = POLICY) -> Rig:
    """A daemon on the fakes (call inside a running loop)."""
    clock = Clocks()
    scheduler = SleepyScheduler(clock)
    sts = CountingSts(clock)
    memory = MemoryFile()
    aws = AwsFiles.from_sections(
        config_path=Path("/nonexistent/config"),
        credentials_path=Path("/nonexistent/credentials"),
        config_sections={},
        credentials_sections={"default": KEYS},
    )

    def load() -> Policy:
        return parse_policy(policy_text, path=Path("/nonexistent/policy.yaml"), aws=aws, env={})

    daemon = Daemon(
        policy=load(),
        load_policy=load,
        sts=sts,
        clock=clock,
        scheduler=scheduler,
        executor=InlineExecutor(),
        writer_for=lambda _path: memory,
        write_delay=0.0,
    )
    return Rig(daemon, clock, scheduler, sts, memory)
