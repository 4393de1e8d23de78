"""Small fakes of the reliability suite's own, to drive `Daemon` in-process on a fake clock.

Independent of tests/support/fakes.py on purpose: these model the worst case
the daemon must survive (a scheduler that sleeps through a suspend and fires
nothing until told), and record every STS call.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from support.fakes import FakeClock, FakeScheduler, InlineExecutor, MemoryWriter

from credd.awsfiles import AwsFiles
from credd.credentials import Credentials
from credd.daemon import Daemon
from credd.errors import StsTransientError
from credd.policy import Policy, parse_policy

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


@dataclass
class Call:
    """One STS call."""

    action: str
    name: str
    at: datetime
    code: str | None


class CountingSts:
    """STS that issues credentials for `duration` from the fake clock, or fails when told."""

    def __init__(self, clock: FakeClock) -> None:
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


@dataclass
class Rig:
    """A daemon on fakes, and the fakes."""

    daemon: Daemon
    clock: FakeClock
    scheduler: FakeScheduler
    sts: CountingSts
    file: MemoryWriter

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
            self.clock.advance(min(step, left))
            left -= step
            await self.scheduler.run_due()
            await self.settle()
            await self.heartbeat()


def make_rig(policy_text: str = POLICY) -> Rig:
    """A daemon on the fakes (call inside a running loop)."""
    clock = FakeClock(T0)
    scheduler = FakeScheduler(clock)
    sts = CountingSts(clock)
    memory = MemoryWriter({"default": KEYS})
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
