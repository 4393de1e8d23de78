"""credd.adapters.memory: one malloc arena (bench/ #7); the collector paused for the start (#6)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

from credd.adapters.memory import M_ARENA_MAX, one_arena, pause_collector, resume_collector


class _Libc:
    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_it_asks_for_one_arena_and_says_whether_glibc_agreed() -> None:
    agreeing, refusing = _Libc(1), _Libc(0)
    assert one_arena(agreeing) is True
    assert agreeing.calls == [(M_ARENA_MAX, 1)] == [(-8, 1)]
    assert one_arena(refusing) is False


def test_a_libc_without_mallopt_is_left_alone() -> None:
    assert one_arena(object()) is False


def test_this_machine_s_glibc_agrees() -> None:
    """Debian's glibc, through the process's own symbols, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", "from credd.adapters.memory import one_arena; print(one_arena())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True", done.stderr


class _Node:
    next: object = None


def test_the_collector_paused_for_the_start_is_on_again_with_the_survivors_kept_out() -> None:
    """What the start made is frozen (never walked again); garbage made during it is freed."""
    assert gc.isenabled()
    try:
        pause_collector()
        assert not gc.isenabled()
        cycle = _Node()
        cycle.next = cycle
        gone = weakref.ref(cycle)
        del cycle
        assert gone() is not None  # a cycle: only the collector frees it
        kept = resume_collector()
        assert gc.isenabled()
        assert kept == gc.get_freeze_count() > 0
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.enable()
