"""The APScheduler adapter: jobs run on the loop, replace each other, and are never dropped late.

Every profile's time is kept in the adapter and APScheduler holds one alarm for the
earliest: these tests drive the real AsyncIOScheduler on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from credd.adapters.scheduler import ApsScheduler


def _recording() -> tuple[list[str], Callable[[str], Awaitable[None]]]:
    """A job that records the names it is run for, and the list it records them in."""
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    return ran, job


async def _until(condition: Any, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_a_job_that_comes_due_while_the_loop_was_blocked_still_runs() -> None:
    """APScheduler's default misfire grace of 1 s would drop this job (SPEC "Known traps");
    ours runs it late instead. The loop is blocked 1.5 s past the job's time to make it late."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran, job = _recording()
    scheduler.at("p", datetime.now(UTC) + timedelta(milliseconds=50), job)
    time.sleep(1.6)  # the event loop (and APScheduler's timer) cannot run meanwhile
    await _until(lambda: ran, seconds=2.0)
    scheduler.shutdown()
    assert ran == ["p"]


async def test_a_job_planned_again_replaces_the_first_and_cancel_forgets_it() -> None:
    """One job per profile: re-planning moves it; cancel removes it."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran, job = _recording()

    soon = datetime.now(UTC) + timedelta(milliseconds=50)
    scheduler.at("a", soon + timedelta(hours=1), job)
    scheduler.at("a", soon, job)
    scheduler.at("b", soon, job)
    scheduler.cancel("b")
    scheduler.cancel("never-planned")
    await _until(lambda: ran, seconds=2.0)
    await asyncio.sleep(0.1)
    scheduler.wakeup()
    scheduler.shutdown()
    assert ran == ["a"]


async def test_planning_a_thousand_profiles_queues_one_wakeup_not_a_thousand() -> None:
    """Regression: APScheduler wrote one byte into the loop's self-pipe per job added; 1,000
    at once filled the pipe, and the SIGTERM that followed was lost (the daemon never
    stopped). Wakeups now coalesce: one is queued however many jobs are planned."""
    loop = asyncio.get_running_loop()
    scheduler = ApsScheduler()
    scheduler.start()
    queued = 0
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal queued
        queued += 1
        return real(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        later = datetime.now(UTC) + timedelta(hours=1)

        async def job(name: str) -> None:
            return None

        for i in range(1000):
            scheduler.at(f"p{i}", later, job)
        assert queued <= 1
        await asyncio.sleep(0.05)
        scheduler.at("one-more", later, job)
        assert queued <= 2
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]
        scheduler.shutdown()


async def test_profiles_run_in_time_order_each_once_as_the_alarm_moves_from_one_to_the_next() -> (
    None
):
    """Planned out of order, some re-planned, one planned earlier than the alarm already set:
    each runs once, at its own time, in time order."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran, job = _recording()

    now = datetime.now(UTC)
    scheduler.at("c", now + timedelta(milliseconds=300), job)
    scheduler.at("a", now + timedelta(hours=1), job)
    scheduler.at("b", now + timedelta(milliseconds=200), job)
    await asyncio.sleep(0.05)  # the alarm is set (for b)
    scheduler.at("a", now + timedelta(milliseconds=100), job)  # earlier than the alarm
    scheduler.at("d", now + timedelta(milliseconds=250), job)
    scheduler.at("d", now + timedelta(milliseconds=400), job)  # moved later
    await _until(lambda: len(ran) >= 4)
    await asyncio.sleep(0.2)
    scheduler.shutdown()
    assert ran == ["a", "b", "c", "d"]


async def test_profiles_due_together_all_run_and_a_failing_one_stops_none_of_the_others(
    caplog: Any,
) -> None:
    """One alarm for many: every profile due runs; one whose work raises is logged."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran: list[str] = []

    async def job(name: str) -> None:
        if name == "p3":
            raise RuntimeError("boom")
        ran.append(name)

    when = datetime.now(UTC) + timedelta(milliseconds=50)
    for i in range(10):
        scheduler.at(f"p{i}", when, job)
    await _until(lambda: len(ran) >= 9)
    await asyncio.sleep(0.05)
    scheduler.shutdown()
    assert sorted(ran) == [f"p{i}" for i in range(10) if i != 3]
    assert "a timer's work failed" in caplog.text


async def test_re_planning_the_same_profile_again_and_again_keeps_its_memory_bounded() -> None:
    """A daemon's life re-plans each profile at every renewal (10,000 in bench #7): the
    entries it leaves behind are dropped, not kept until their old times come up."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran, job = _recording()

    later = datetime.now(UTC) + timedelta(hours=1)
    for i in range(10_000):
        scheduler.at(f"p{i % 3}", later + timedelta(seconds=i), job)
    assert len(scheduler._heap) <= 2 * 3 + 64
    scheduler.at("p0", datetime.now(UTC) + timedelta(milliseconds=20), job)
    await _until(lambda: ran)
    await asyncio.sleep(0.05)
    scheduler.shutdown()
    assert ran == ["p0"]
