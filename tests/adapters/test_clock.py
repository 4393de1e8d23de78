"""The heartbeat's clock comparison: a suspend and a wall-clock jump are told apart from time."""

from __future__ import annotations

from support.fakes import FakeClock

from credd.adapters.clock import JumpDetector, SystemClock


def test_time_passing_normally_is_no_jump() -> None:
    """All clocks advance together: nothing to re-plan."""
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.advance(30)
    assert detector.check() is None


def test_a_suspend_shows_as_boottime_running_ahead_of_monotonic() -> None:
    """CLOCK_BOOTTIME counts the sleep, CLOCK_MONOTONIC does not (Linux)."""
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.suspend(7200)
    jump = detector.check()
    assert jump is not None and jump.suspended == 7200 and jump.wall_shift == 7200
    assert detector.check() is None, "reported once"


def test_a_wall_clock_jump_either_way_is_seen() -> None:
    """Someone sets the clock a day forward or back: only the wall clock moved."""
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.jump(86400)
    forward = detector.check()
    clock.jump(-86400)
    back = detector.check()
    assert forward is not None and forward.wall_shift == 86400 and forward.suspended == 0
    assert back is not None and back.wall_shift == -86400


def test_small_drift_is_ignored() -> None:
    """NTP slews of a second or two are not jumps."""
    clock = FakeClock()
    detector = JumpDetector(clock)
    clock.jump(2)
    assert detector.check() is None


def test_the_system_clock_reads_aware_utc_and_two_steady_clocks() -> None:
    """Real clocks: the wall clock is aware UTC; the others are non-decreasing."""
    clock = SystemClock()
    assert clock.now().utcoffset() is not None
    first = (clock.monotonic(), clock.boottime())
    assert clock.monotonic() >= first[0] and clock.boottime() >= first[1]
