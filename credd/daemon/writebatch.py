"""Batches credentials-file writes: renewals that land together are written in one rewrite.

A write someone waits on (a fed code) starts at once; background renewals wait
`delay` seconds for company. Only one rewrite runs at a time; whatever arrives
meanwhile goes into the next. Runs on the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Updates = dict[str, dict[str, str | None]]


class WriteBatcher:
    """Collects section updates and hands them to `flush` in batches."""

    def __init__(self, flush: Callable[[Updates], Awaitable[None]], *, delay: float) -> None:
        self._flush = flush
        self._delay = delay
        self._pending: Updates = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._urgent = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.rewrites = 0  # how many times the file was rewritten (for benchmarks and tests)

    @property
    def runner(self) -> asyncio.Task[None] | None:
        """The rewrite loop running now, if any (a reload waits for it before closing)."""
        return self._runner if self._runner is not None and not self._runner.done() else None

    async def write(self, section: str, keys: dict[str, str | None], *, urgent: bool) -> None:
        """Queue `keys` for `section`; return once they are on disk (or raise the write's error)."""
        self._pending[section] = keys
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if urgent:
            self._urgent.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        await waiter

    async def drain(self) -> None:
        """Finish every queued write (on shutdown: never stop in the middle of one)."""
        self._urgent.set()
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def _run(self) -> None:
        while self._pending:
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._delay)
            self._urgent.clear()
            batch, self._pending = self._pending, {}
            waiters, self._waiters = self._waiters, []
            try:
                self.rewrites += 1
                await self._flush(batch)
            except BaseException as error:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
