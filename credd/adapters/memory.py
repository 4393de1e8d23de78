"""The daemon's memory: one malloc arena, no per-thread malloc caches, and the cyclic
collector paused while it starts.

One malloc arena, because its threads take turns on the GIL anyway.

glibc gives each thread that allocates an arena of its own (up to eight per core), and
each arena keeps the memory it once held. With a worker per STS call in flight, the
daemon's RSS grew 7 MiB over 10,000 renewals (bench/ #7), against about 2 with one
arena; Python allocates under the GIL, so one arena costs no parallelism worth having.
This is what `MALLOC_ARENA_MAX=1` in the environment does, done by `credd run` itself
so that it holds however the daemon is started. Elsewhere than glibc, nothing happens.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, MutableMapping, Sequence

# `credd run` imports this module before it may exec itself again: only what it needs.
TYPE_CHECKING = False
if TYPE_CHECKING:
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
        import ctypes

        try:
            libc = ctypes.CDLL(None)
        except OSError:
            return False
    mallopt = getattr(libc, "mallopt", None)  # musl and others have none
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, 1))


# glibc's tunable for the cache of freed chunks each thread keeps (7 of each small size).
TCACHE_OFF = "glibc.malloc.tcache_count=0"


def restart_without_thread_caches(
    environ: MutableMapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    execve: Callable[[str, list[str], MutableMapping[str, str]], object] = os.execve,
) -> bool:
    """Under glibc, run this process again (exec: the same pid) with the threads' malloc
    caches off, unless they already are. Call first of all; False when nothing was done.

    Each thread keeps up to 7 freed chunks of every small size for itself, and the
    daemon's 20 workers filled theirs over its life: RSS grew 2.3 MiB over 10,000
    renewals, 1.1 with the caches off (docs/performance.md, #7). glibc reads that only
    from `GLIBC_TUNABLES`, at a process's start: hence the exec, before anything else is
    loaded. The setting stays in the environment, for what the daemon runs too (a code
    command), where it is harmless. `environ`, `argv` and `execve` are for tests.
    """
    environ = os.environ if environ is None else environ
    argv = sys.orig_argv if argv is None else argv
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.tcache_count=" in tunables or not sys.executable or not _glibc():
        return False
    environ["GLIBC_TUNABLES"] = f"{tunables}:{TCACHE_OFF}" if tunables else TCACHE_OFF
    try:
        execve(sys.executable, [sys.executable, *argv[1:]], environ)
    except OSError:  # the interpreter cannot be run again: go on as the caches are
        return False
    return True  # only where `execve` returns: a test's


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not a name this system knows: not glibc
        return False


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
