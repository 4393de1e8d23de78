"""The APScheduler adapter: jobs run on the loop, replace each other, and are never dropped late."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from credd.adapters.scheduler import ApsScheduler


async def test_a_job_that_comes_due_while_the_loop_was_blocked_still_runs() -> None:
    """APScheduler's default misfire grace of 1 s would drop this job (SPEC "Known traps");
    ours runs it late instead. The loop is blocked 1.5 s past the job's time to make it late."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    scheduler.at("p", datetime.now(UTC) + timedelta(milliseconds=50), job)
    time.sleep(1.6)  # the event loop (and APScheduler's timer) cannot run meanwhile
    for _ in range(200):
        if ran:
            break
        await asyncio.sleep(0.01)
    scheduler.shutdown()
    assert ran == ["p"]


async def test_a_job_planned_again_replaces_the_first_and_cancel_forgets_it() -> None:
    """One job per profile: re-planning moves it; cancel removes it."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(name)

    soon = datetime.now(UTC) + timedelta(milliseconds=50)
    scheduler.at("a", soon + timedelta(hours=1), job)
    scheduler.at("a", soon, job)
    scheduler.at("b", soon, job)
    scheduler.cancel("b")
    scheduler.cancel("never-planned")
    for _ in range(200):
        if ran:
            break
        await asyncio.sleep(0.01)
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
