"""How hard credd presses on STS: so many calls in flight at most, started so many a second.

AWS throttles STS per account and Region with a token bucket, and the calls of every
program on the account count against it (AWS's IAM and STS quotas page gives the
account's default rate: 600 requests a second per Region at the time of writing; the
Service Quotas console shows an account's own). A call mostly waits on the network, so
overlapping calls is what makes 1,000 profiles fresh in seconds rather than a minute;
but credd must not take the account's whole budget by design. So it holds at most
`concurrency` calls in flight (16 unless `CREDD_STS_CONCURRENCY` says otherwise,
1-64) and starts at most `CALLS_PER_SECOND` (400, two thirds of that quota, leaving
the rest to the person's other tools); a throttled call is retried with credd's own
back-off like any temporary failure. docs/performance.md has the figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from credd.errors import BadInputError

DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 64
CALLS_PER_SECOND = 400.0
CONCURRENCY_VARIABLE = "CREDD_STS_CONCURRENCY"


def concurrency_from(env: Mapping[str, str]) -> int:
    """`CREDD_STS_CONCURRENCY` as a number of calls, or a clear error for a bad value."""
    text = env.get(CONCURRENCY_VARIABLE, "").strip()
    if not text:
        return DEFAULT_CONCURRENCY
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CONCURRENCY:
        raise BadInputError(
            f"{CONCURRENCY_VARIABLE}={text[:20]!r} is not a whole number from 1 to "
            f"{MAX_CONCURRENCY} (how many STS calls credd makes at once; default "
            f"{DEFAULT_CONCURRENCY})"
        )
    return int(text)


class Pacer:
    """At most `concurrency` holders of `slot()` at once, entering `rate` a second at most.

    Thread-safe; a thread waits in `slot()` (on `sleep`, for the start rate) before its
    call, never after. `monotonic` and `sleep` are for tests.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate: float = CALLS_PER_SECOND,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._interval = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = float("-inf")

    def __repr__(self) -> str:
        return f"Pacer(concurrency={self.concurrency}, rate={1 / self._interval:g}/s)"

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots for a call, entered no sooner than the start rate allows."""
        with self._slots:
            with self._lock:
                now = self._monotonic()
                start = max(now, self._next_start)
                self._next_start = start + self._interval
            if start > now:
                self._sleep(start - now)
            yield
