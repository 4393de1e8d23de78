"""APScheduler's one home in credd: one date job per profile on the daemon's event loop."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

Callback = Callable[[str], Awaitable[None]]


class Scheduler(Protocol):
    """Runs `callback(name)` on the event loop at `when`; one pending job per name."""

    def start(self) -> None:
        """Begin running jobs (inside the running event loop)."""
        ...

    def at(self, name: str, when: datetime, callback: Callback) -> None:
        """Run `callback(name)` at `when`, replacing any job already planned for `name`."""
        ...

    def cancel(self, name: str) -> None:
        """Forget the job planned for `name`, if any."""
        ...

    def wakeup(self) -> None:
        """Re-read the wall clock now (after a suspend or a clock jump)."""
        ...

    def shutdown(self) -> None:
        """Stop running jobs."""
        ...


class _CoalescingAsyncIOScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose wakeups coalesce: at most one waits on the loop at a time.

    Its own `wakeup` goes through `call_soon_threadsafe` once per job added, a byte into
    the event loop's self-pipe each. Planning 1,000 profiles at once filled that pipe,
    so the SIGTERM that came next could not be written to it and was lost: the daemon
    never stopped (bench/RESULTS.md #6). It also ran the job store once per job added.
    """

    _wakeup_queued = False

    def wakeup(self) -> None:
        """Have the loop look at the jobs again, soon; a wakeup already queued will do."""
        if self._wakeup_queued:
            return
        self._wakeup_queued = True
        self._eventloop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wakeup_queued = False
        if not self.running:
            return
        self._stop_timer()
        self._start_timer(self._process_jobs())


class ApsScheduler:
    """`Scheduler` on APScheduler 3's AsyncIOScheduler.

    misfire_grace_time=None: APScheduler's default of one second silently drops a
    job that comes due while a laptop sleeps (SPEC.md "Known traps"); a late
    renewal must still run.
    """

    def __init__(self) -> None:
        # APScheduler logs every job run at INFO; that is noise in a daemon's journal.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = _CoalescingAsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        """Start on the running loop."""
        self._scheduler.start()

    def at(self, name: str, when: datetime, callback: Callback) -> None:
        """Plan one date job, replacing the profile's previous one."""
        self._scheduler.add_job(
            callback, "date", run_date=when, args=[name], id=name, replace_existing=True
        )

    def cancel(self, name: str) -> None:
        """Remove the profile's job; a job already run or never planned is fine."""
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def wakeup(self) -> None:
        """Make APScheduler recompute its next wait from the wall clock."""
        self._scheduler.wakeup()

    def shutdown(self) -> None:
        """Stop without waiting: the daemon cancels its own work."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
