"""The APScheduler adapter: jobs run on the loop, replace each other, and are never dropped late."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from credd.scheduler import ApsScheduler


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
