"""The daemon's memory: one malloc arena, and the cyclic collector paused while it starts.

One malloc arena, because its threads take turns on the GIL anyway.

glibc gives each thread that allocates an arena of its own (up to eight per core), and
each arena keeps the memory it once held. With a worker per STS call in flight, the
daemon's RSS grew 7 MiB over 10,000 renewals (bench/ #7), against about 2 with one
arena; Python allocates under the GIL, so one arena costs no parallelism worth having.
This is what `MALLOC_ARENA_MAX=1` in the environment does, done by `credd run` itself
so that it holds however the daemon is started. Elsewhere than glibc, nothing happens.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import Any

# glibc's <malloc.h>.
M_ARENA_MAX = -8


def one_arena(libc: Any = None) -> bool:
    """Ask glibc for a single malloc arena; whether it agreed. Call before any thread starts.

    `libc` (the process's own symbols by default) is for tests.
    """
    if libc is None:
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None)
        except OSError:
            return False
    mallopt = getattr(libc, "mallopt", None)  # musl and others have none
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, 1))


def pause_collector() -> None:
    """Turn the cyclic collector off for the start (call first, before the daemon's imports).

    Starting allocates a great deal and frees little: the imports, the policy, every
    profile's first plan. The collector would walk all of it, again and again, for
    nothing: with it off, `credd run` is READY with 1,000 profiles 50 ms sooner, of
    about 340 (docs/performance.md, #6).
    """
    gc.disable()


def resume_collector() -> int:
    """Once started: collect once, keep what survived out of every later collection (it
    lives as long as the daemon), and turn the collector back on. The objects kept out."""
    gc.collect()
    gc.freeze()
    gc.enable()
    return gc.get_freeze_count()
