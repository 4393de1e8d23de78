"""APScheduler's one home in credd: the daemon's timers, on its event loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
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


# The id of the one job APScheduler holds: the alarm for the earliest profile's time.
_ALARM = "credd-next"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApsScheduler:
    """`Scheduler` on APScheduler 3's AsyncIOScheduler, with one job for every profile.

    Each profile's time is kept here, in a heap; APScheduler holds one date job, the
    alarm, set for the earliest of them, and runs it on the loop when it comes: every
    profile then due is run, and the alarm set again for the next. One job, not one per
    profile: APScheduler's add_job costs 20 µs and a Job each, and planning 1,000
    profiles at start spent 20 to 30 ms of `credd run`'s 300 to READY in it
    (docs/performance.md, #6).

    misfire_grace_time=None: APScheduler's default of one second silently drops a job
    that comes due while a laptop sleeps (SPEC.md "Known traps"); a late renewal must
    still run. `now` (the wall clock) is for tests.
    """

    def __init__(self, now: Callable[[], datetime] = _utc_now) -> None:
        # APScheduler logs every job run at INFO; that is noise in a daemon's journal.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True}
        )
        self._now = now
        # name -> (when, ticket, callback); the heap holds (when, ticket, name), and an
        # entry whose ticket is no longer its name's was re-planned or cancelled since.
        self._planned: dict[str, tuple[datetime, int, Callback]] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._tickets = itertools.count()
        self._alarm: datetime | None = None  # when the alarm is set for, if it is
        self._arming = False  # a call to _arm is queued on the loop
        self._running: set[asyncio.Future[None]] = set()

    def start(self) -> None:
        """Start on the running loop, with the alarm set for what was planned before."""
        self._scheduler.start()
        self._arm()

    def at(self, name: str, when: datetime, callback: Callback) -> None:
        """Plan `callback(name)` at `when`, replacing the profile's previous plan."""
        ticket = next(self._tickets)
        self._planned[name] = (when, ticket, callback)
        heapq.heappush(self._heap, (when, ticket, name))
        if len(self._heap) > 2 * len(self._planned) + 64:
            # Re-planned entries wait in the heap until they come up; do not let them pile.
            self._heap = [(w, t, n) for n, (w, t, _) in self._planned.items()]
            heapq.heapify(self._heap)
        if (self._alarm is None or when < self._alarm) and not self._arming:
            # Planning 1,000 profiles sets the alarm once, after the last of them: one
            # APScheduler wakeup, one byte into the loop's self-pipe. One per profile once
            # filled that pipe, and the SIGTERM that came next was lost (bench/ #6).
            self._arming = True
            asyncio.get_running_loop().call_soon(self._arm)

    def cancel(self, name: str) -> None:
        """Forget the profile's plan; one already run or never made is fine."""
        self._planned.pop(name, None)  # its heap entry is passed over when it comes up

    def wakeup(self) -> None:
        """Make APScheduler recompute the alarm's wait from the wall clock."""
        if self._scheduler.running:
            self._scheduler.wakeup()

    def shutdown(self) -> None:
        """Stop without waiting: the daemon cancels its own work."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _arm(self) -> None:
        """Set the alarm for the earliest time planned (or take it away: nothing is)."""
        self._arming = False
        if not self._scheduler.running:
            return
        heap = self._heap
        while heap and self._planned.get(heap[0][2], (None, None))[1] != heap[0][1]:
            heapq.heappop(heap)
        first = heap[0][0] if heap else None
        if first == self._alarm:
            return
        self._alarm = first
        if first is None:
            if self._scheduler.get_job(_ALARM) is not None:
                self._scheduler.remove_job(_ALARM)
            return
        # max_instances: a new alarm may come due while the one that set it is finishing.
        self._scheduler.add_job(
            self._ring, "date", run_date=first, id=_ALARM, replace_existing=True, max_instances=2
        )

    async def _ring(self) -> None:
        """The alarm: run every profile due by now, then set the alarm for the next."""
        self._alarm = None  # APScheduler drops a date job once run
        now = self._now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, ticket, name = heapq.heappop(heap)
            planned = self._planned.get(name)
            if planned is None or planned[1] != ticket:
                continue
            del self._planned[name]
            task = asyncio.ensure_future(planned[2](name))
            self._running.add(task)
            task.add_done_callback(self._finished)
        self._arm()

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a timer's work failed", exc_info=task.exception())
