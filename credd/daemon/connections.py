"""The open connections of one of the daemon's servers: the control socket, the endpoint.

Their number is capped. At the cap, the connection that has waited longest for a
request is dropped to make room, so idle clients cannot lock anyone out; a new one is
closed at once only when every open one is busy. However a connection ends (the
client left, it timed out, it was dropped, the daemon stops), it ends closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Connections:
    """One server's open connections, each served by its own task."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self._what = what  # "control", "endpoint": for the log
        self._open: set[asyncio.Task[Any]] = set()
        # Connections waiting for their next request, and since when (monotonic).
        self._idle_since: dict[asyncio.Task[Any], float] = {}

    async def serve(
        self,
        writer: asyncio.StreamWriter,
        work: Callable[[], Awaitable[None]],
        *,
        quiet: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Run `work` for the current connection, within the cap; close it afterwards.

        Connection errors, timeouts and the `quiet` exceptions end the connection
        silently: they are the client's doing.
        """
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= self.limit and not self._drop_idlest():
            log.warning("too many %s connections, all busy; closing a new one", self._what)
            writer.close()
            return
        self._open.add(task)
        ended_by_client: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, *quiet)
        try:
            await work()
        except ended_by_client:
            pass
        except asyncio.CancelledError:
            # Ended by close() or to make room: the top of this connection's task, so the
            # cancellation stops here (asyncio would log it as an error otherwise).
            pass
        finally:
            self._open.discard(task)
            self._idle_since.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    def idle(self) -> None:
        """The current connection waits for its next request (it may be dropped for room)."""
        task = asyncio.current_task()
        assert task is not None
        self._idle_since[task] = time.monotonic()

    def busy(self) -> None:
        """The current connection has a request in hand: it is not dropped for room."""
        task = asyncio.current_task()
        if task is not None:
            self._idle_since.pop(task, None)

    async def close(self) -> None:
        """End every open connection (waiting a moment for them to close)."""
        for task in list(self._open):
            task.cancel()
        if self._open:
            await asyncio.wait(list(self._open), timeout=2)

    def _drop_idlest(self) -> bool:
        if not self._idle_since:
            return False
        task = min(self._idle_since, key=self._idle_since.__getitem__)
        del self._idle_since[task]
        self._open.discard(task)
        task.cancel()
        log.debug("too many %s connections; dropped the longest idle one", self._what)
        return True
