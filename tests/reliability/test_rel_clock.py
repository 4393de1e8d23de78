"""Suspends and wall-clock jumps, in-process: the real `Daemon` on a fake clock.

A real process cannot be suspended here, and libfaketime cannot fake
CLOCK_BOOTTIME against CLOCK_MONOTONIC, so these drive `Daemon` with the
suite's own fakes (relfakes.py). The scheduler fakes APScheduler at its worst:
it fires nothing across a suspend or a jump, so only the daemon's own
heartbeat (`Daemon.tick`, every 30 s in production) can catch up.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from relfakes import Rig, make_rig

from credd.daemon.planner import BACKOFF_CAP_SECONDS

HOUR = 3600.0
DAY = 24 * HOUR


def _run(body: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = make_rig()
        rig.daemon.start_scheduler()
        await rig.daemon.start()
        await rig.settle()
        await body(rig)
        await rig.daemon.stop()

    asyncio.run(main())


async def _all_fresh(rig: Rig) -> None:
    """From start to all three profiles fresh: the session by a fed code."""
    assert rig.state("session-alice") == "awaiting-code"
    assert rig.state("solo") == "fresh"
    await rig.daemon.feed_code("123456", None)
    await rig.settle()
    assert {n: rig.state(n) for n in ("session-alice", "chained", "solo")} == dict.fromkeys(
        ("session-alice", "chained", "solo"), "fresh"
    )


@pytest.mark.case(
    "STS and codes",
    "a 2-hour suspend across a renewal time",
    "at the first heartbeat after waking: the role renewed once, the session awaiting a "
    "code, its chained role waiting for it; nothing more at the next beats",
)
def test_a_two_hour_suspend_is_caught_by_the_next_heartbeat() -> None:
    """The machine sleeps 2 h over every profile's renewal time (monotonic stops, boottime
    and the wall clock go on) and the scheduler fires nothing. One heartbeat later: `solo`
    is renewed with exactly one call, `session-alice` is `awaiting-code`, `chained` waits
    for it with no STS call; two more heartbeats add nothing; the fed code then renews the
    session and its role at once."""

    async def body(rig: Rig) -> None:
        await _all_fresh(rig)
        calls = len(rig.sts.calls)
        rig.clock.suspend(2 * HOUR)
        await rig.heartbeat()
        assert rig.scheduler.wakeups == 1
        assert rig.state("solo") == "fresh"
        assert rig.state("session-alice") == "awaiting-code"
        assert rig.state("chained") == "expired"
        assert [c.name for c in rig.sts.calls[calls:]] == ["credd-solo"]
        for _ in range(2):
            await rig.awake(30)
        assert len(rig.sts.calls) == calls + 1
        await rig.daemon.feed_code("654321", None)
        await rig.settle()
        assert rig.state("chained") == "fresh"
        assert len(rig.sts.calls) == calls + 3

    _run(body)


@pytest.mark.case(
    "STS and codes",
    "the wall clock moved a day forward",
    "at the next heartbeat: due roles renewed once, the session awaiting a code; no burst",
)
def test_a_wall_clock_jump_forward_renews_at_the_next_heartbeat() -> None:
    """The wall clock jumps +24 h with no suspend (boottime and monotonic agree): the
    heartbeat sees the jump, renews `solo` once and asks for the session's code; the
    beats after that call STS no more."""

    async def body(rig: Rig) -> None:
        await _all_fresh(rig)
        calls = len(rig.sts.calls)
        rig.clock.jump(DAY)
        await rig.heartbeat()
        assert rig.scheduler.wakeups == 1
        assert rig.state("session-alice") == "awaiting-code"
        assert rig.state("solo") == "fresh"
        assert [c.name for c in rig.sts.calls[calls:]] == ["credd-solo"]
        await rig.awake(5 * 60)
        assert len(rig.sts.calls) == calls + 1

    _run(body)


@pytest.mark.case(
    "STS and codes",
    "the wall clock moved a day back",
    "no renewal at the jump (no burst); each renewal still happens once, when the wall "
    "clock reaches its planned time (no missed renewal)",
)
def test_a_wall_clock_jump_back_neither_bursts_nor_misses() -> None:
    """Expiries are absolute (STS's), so after the wall clock goes back 24 h nothing is
    due: the jump is noticed and nothing is called. Time then runs awake until the wall
    clock is past the old renewal times: each role's first renewal comes at its planned
    time (within one heartbeat), the session asks for its code, and no profile is ever
    renewed twice within a minute."""

    async def body(rig: Rig) -> None:
        await _all_fresh(rig)
        planned = {}
        for name in ("chained", "solo"):
            entry = rig.daemon.entry(name)
            assert entry is not None and entry.next_refresh_at is not None
            planned[name] = entry.next_refresh_at
        calls = len(rig.sts.calls)
        rig.clock.jump(-DAY)
        await rig.heartbeat()
        assert rig.scheduler.wakeups == 1
        assert len(rig.sts.calls) == calls
        assert {rig.state(n) for n in ("session-alice", "chained", "solo")} == {"fresh"}
        first = min(planned.values())
        await rig.awake((first - rig.clock.now()).total_seconds() - 60, step=600)
        assert len(rig.sts.calls) == calls, "nothing before its time"
        await rig.awake((max(planned.values()) - rig.clock.now()).total_seconds() + 120)
        after = rig.sts.calls[calls:]
        for name, when in planned.items():
            renewed = next(c.at for c in after if c.name == f"credd-{name}")
            assert when <= renewed <= when + timedelta(seconds=60), (name, when, renewed)
        assert rig.state("session-alice") == "awaiting-code"
        for name in planned:
            times = [c.at for c in rig.sts.calls if c.name == f"credd-{name}"]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(gap >= timedelta(minutes=1) for gap in gaps), (name, times)

    _run(body)


@pytest.mark.case(
    "STS and codes",
    "STS failing for two hours (throttling), several profiles at once",
    "retries back off exponentially with jitter up to 5 min; the credentials are kept "
    "(state refreshing) until they expire, then the state is expired; the file keeps them",
)
def test_failing_sts_backs_off_with_jitter_and_keeps_credentials_until_expiry() -> None:
    """With STS throttling every call, three roles that fail together get three different
    retry times (jitter); over 2 h each is tried at most ~2 h / 150 s + 6 times (the
    backoff, never a burst), stays `refreshing` with its credentials while they are valid
    and turns `expired` after; the file still holds what was last written."""
    policy = """\
version: 1
defaults: {region: us-east-1, refresh_before: 15m, duration: 1h}
profiles:
  r1: {source_profile: default, role_arn: "arn:aws:iam::123456789012:role/R1"}
  r2: {source_profile: default, role_arn: "arn:aws:iam::123456789012:role/R2"}
  r3: {source_profile: default, role_arn: "arn:aws:iam::123456789012:role/R3"}
"""

    async def main() -> None:
        rig = make_rig(policy)
        rig.daemon.start_scheduler()
        await rig.daemon.start()
        await rig.settle()
        names = ("r1", "r2", "r3")
        assert {rig.state(n) for n in names} == {"fresh"}
        written = {n: rig.file.sections[n]["aws_access_key_id"] for n in names}
        expiry = rig.daemon.entry("r1").expires_at  # type: ignore[union-attr]
        rig.sts.failing = True
        await rig.daemon.refresh([])
        retry_at = {rig.daemon.entry(n).next_refresh_at for n in names}  # type: ignore[union-attr]
        assert len(retry_at) == 3, "retries of profiles that failed together are jittered"
        assert {rig.state(n) for n in names} == {"refreshing"}
        last = 0
        while rig.clock.now() < expiry - timedelta(seconds=60):  # type: ignore[operator]
            await rig.awake(30)
            assert {rig.state(n) for n in names} == {"refreshing"}
            last = len(rig.sts.calls)
        await rig.awake(2 * HOUR)
        assert {rig.state(n) for n in names} == {"expired"}
        per_profile = [rig.sts.count(f"credd-{n}") for n in names]
        ceiling = 1 + 1 + (3 * HOUR) / (BACKOFF_CAP_SECONDS / 2) + 8
        assert all(10 < n < ceiling for n in per_profile), per_profile
        assert last > 3
        for n in names:
            assert rig.file.sections[n]["aws_access_key_id"] == written[n]
            assert "attempt" in (rig.daemon.entry(n).last_error or "")  # type: ignore[union-attr]
        await rig.daemon.stop()

    asyncio.run(main())
