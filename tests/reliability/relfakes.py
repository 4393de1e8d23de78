"""Small fakes of the reliability suite's own, to drive `Daemon` in-process on a fake clock.

Independent of tests/support/fakes.py on purpose: these model the worst case
the daemon must survive (a scheduler that sleeps through a suspend and fires
nothing until told), and record every STS call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from support.fakes import FakeClock, FakeScheduler, InlineExecutor, MemorySts, MemoryWriter

from credd.daemon.core import Daemon
from credd.files.lookup import AwsFiles
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
class Rig:
    """A daemon on fakes, and the fakes."""

    daemon: Daemon
    clock: FakeClock
    scheduler: FakeScheduler
    sts: MemorySts
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
    sts = MemorySts(clock)
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
