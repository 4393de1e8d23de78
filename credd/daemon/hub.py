"""The subscriber hub: `credctl prompt` clients and the events sent to them.

Each subscriber has a bounded queue. One that stops reading is dropped, never
waited for: the daemon (and its stop) must not hang on a stalled terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# Subscribers that fall this far behind are dropped, not waited for.
SUBSCRIBER_QUEUE = 64

Event = dict[str, Any]


class Hub:
    """Fans events out to every subscriber's queue."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE) -> None:
        self._queue_size = queue_size
        self._queues: set[asyncio.Queue[Event]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self, backlog: Iterable[Event] = ()) -> asyncio.Queue[Event]:
        """A new subscriber's queue, starting with `backlog` (the codes already awaited)."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        for event in backlog:
            if not self._offer(queue, event):
                break
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Forget a subscriber that went away."""
        self._queues.discard(queue)

    def broadcast(self, event: Event) -> None:
        """Send `event` to every subscriber that keeps up; drop the others."""
        for queue in list(self._queues):
            if not self._offer(queue, event):
                self._queues.discard(queue)
                log.warning("dropped a credctl prompt that stopped reading")

    def shutdown(self) -> None:
        """Say goodbye to every subscriber; a stalled one is dropped (it cannot be told)."""
        self.broadcast({"event": "shutdown"})

    @staticmethod
    def _offer(queue: asyncio.Queue[Event], event: Event) -> bool:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True
