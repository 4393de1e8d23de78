"""One malloc arena for the daemon: its threads take turns on the GIL anyway.

glibc gives each thread that allocates an arena of its own (up to eight per core), and
each arena keeps the memory it once held. With a worker per STS call in flight, the
daemon's RSS grew 7 MiB over 10,000 renewals (bench/ #7), against about 2 with one
arena; Python allocates under the GIL, so one arena costs no parallelism worth having.
This is what `MALLOC_ARENA_MAX=1` in the environment does, done by `credd run` itself
so that it holds however the daemon is started. Elsewhere than glibc, nothing happens.
"""

from __future__ import annotations

import ctypes
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
