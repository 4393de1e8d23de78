"""The STS pacer: so many calls in flight at most, started so many a second at most."""

from __future__ import annotations

import contextlib
import threading

import pytest

from credd.adapters.pacing import (
    CALLS_PER_SECOND,
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    Pacer,
    concurrency_from,
)
from credd.errors import BadInputError


class _FakeTime:
    """A monotonic clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.lock = threading.Lock()
        self.starts: list[float] = []

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_calls_start_no_faster_than_the_rate() -> None:
    """Ten calls at once on a clock that stands still but for the pacer's own waits: each
    starts one interval after the one before, the first at once."""
    clock = _FakeTime()
    pacer = Pacer(10, rate=50.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(10):
        with pacer.slot():
            clock.starts.append(clock.now)
    gaps = [round(b - a, 9) for a, b in zip(clock.starts, clock.starts[1:], strict=False)]
    assert clock.starts[0] == 100.0
    assert gaps == [0.02] * 9


def test_a_call_after_a_quiet_spell_starts_at_once() -> None:
    clock = _FakeTime()
    pacer = Pacer(2, rate=1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    with pacer.slot():
        pass
    clock.now += 5.0
    with pacer.slot():
        assert clock.now == 105.0


def test_no_more_calls_in_flight_than_the_concurrency() -> None:
    """Twelve threads through a pacer of three: at most three inside at once, and three
    reached (the threads wait for each other inside, so a fourth would show)."""
    pacer = Pacer(3, rate=1e6)
    inside = 0
    most = 0
    lock = threading.Lock()
    three_in = threading.Barrier(3, timeout=5)

    def call() -> None:
        nonlocal inside, most
        with pacer.slot():
            with lock:
                inside += 1
                most = max(most, inside)
            with contextlib.suppress(threading.BrokenBarrierError):
                three_in.wait()
            with lock:
                inside -= 1

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 3


def test_the_default_concurrency_and_rate() -> None:
    assert concurrency_from({}) == DEFAULT_CONCURRENCY == 16
    assert concurrency_from({"CREDD_STS_CONCURRENCY": " 4 "}) == 4
    assert concurrency_from({"CREDD_STS_CONCURRENCY": str(MAX_CONCURRENCY)}) == MAX_CONCURRENCY
    assert repr(Pacer()) == f"Pacer(concurrency=16, rate={CALLS_PER_SECOND:g}/s)"


@pytest.mark.parametrize("value", ["0", "65", "-1", "eight", "2.5", "1e3", "١٢"])
def test_a_bad_concurrency_is_refused_with_the_range(value: str) -> None:
    with pytest.raises(BadInputError) as caught:
        concurrency_from({"CREDD_STS_CONCURRENCY": value})
    assert caught.value.exit_status == 2
    assert caught.value.message == (
        f"CREDD_STS_CONCURRENCY={value!r} is not a whole number from 1 to 64 "
        "(how many STS calls credd makes at once; default 16)"
    )
