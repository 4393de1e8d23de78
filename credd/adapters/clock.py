"""Clocks, and the heartbeat's check for a suspend or a wall-clock jump.

APScheduler computes its waits from the wall clock but sleeps on the monotonic
clock, which stops while a laptop sleeps; a jump of the wall clock is not seen
either. The daemon's heartbeat compares clocks with `JumpDetector` and re-plans
when they disagree (SPEC.md "Sleep and clock jumps").
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

# Clocks that disagree by more than this between two heartbeats mean a suspend or a jump.
JUMP_THRESHOLD_SECONDS = 5.0


class Clock(Protocol):
    """What the daemon reads time from; tests pass a fake."""

    def now(self) -> datetime:
        """The wall clock, as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """A clock that never jumps; it may stop during a suspend."""
        ...

    def boottime(self) -> float:
        """A clock that never jumps and keeps counting during a suspend, where the OS has one.

        Elsewhere the wall clock stands in, which also reveals a suspend (with a jump).
        """
        ...


class SystemClock:
    """The real clocks. CLOCK_BOOTTIME on Linux counts suspended time; CLOCK_MONOTONIC does not."""

    def now(self) -> datetime:
        """The wall clock in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """CLOCK_MONOTONIC."""
        return time.monotonic()

    def boottime(self) -> float:
        """CLOCK_BOOTTIME on Linux; the wall clock elsewhere (macOS has no such clock in Python)."""
        if sys.platform.startswith("linux"):
            return time.clock_gettime(time.CLOCK_BOOTTIME)
        return time.time()


@dataclass(frozen=True)
class Jump:
    """What the heartbeat saw since its last look, in seconds (positive: time went missing)."""

    suspended: float  # boottime advanced more than monotonic: the machine slept
    wall_shift: float  # the wall clock moved against the monotonic clock: a jump or a sleep


class JumpDetector:
    """Compares the clocks at each heartbeat; `check()` returns a Jump when they disagree."""

    def __init__(self, clock: Clock, *, threshold: float = JUMP_THRESHOLD_SECONDS) -> None:
        self._clock = clock
        self._threshold = threshold
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        return (self._clock.now().timestamp(), self._clock.monotonic(), self._clock.boottime())

    def check(self) -> Jump | None:
        """Read the clocks: a Jump if a suspend or a wall-clock jump came since the last call."""
        wall, mono, boot = self._read()
        last_wall, last_mono, last_boot = self._last
        self._last = (wall, mono, boot)
        elapsed = mono - last_mono
        jump = Jump(suspended=(boot - last_boot) - elapsed, wall_shift=(wall - last_wall) - elapsed)
        if abs(jump.suspended) > self._threshold or abs(jump.wall_shift) > self._threshold:
            return jump
        return None
