"""Measuring whole processes from outside: wall time and CPU of each child, and peak RSS.

Every timed command is a real subprocess. Its wall time is `time.perf_counter()`
around spawn-to-reap; its CPU comes from the kernel's rusage for that one child
(`os.wait4`), so nothing inside the measured program is trusted for either.

A peak RSS cannot come from that rusage: `subprocess` starts a child with vfork,
and the kernel then counts the parent's own peak into the child's `ru_maxrss`
(the bench process's, 50 MiB and more, reported for a 45 MiB child). The child
reads its own `VmHWM` as its last act instead (`peak_rss_mib`): the high-water
mark of the memory its exec began with, nothing of the parent's.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    """One finished child process."""

    wall: float  # seconds, spawn to reap
    cpu: float  # user + system seconds
    status: int
    stdout: str


class CommandFailed(RuntimeError):
    """A measured command exited non-zero: a benchmark of a failure means nothing."""


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120.0,
) -> Run:
    """Spawn `argv`, feed `stdin`, reap it with wait4; output goes to temp files (no pipe stall)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        status, usage = _reap(proc, timeout)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        if check and status != 0:
            tail = err.read().decode("utf-8", "replace")[-2000:]
            raise CommandFailed(f"{' '.join(argv)} exited {status}:\n{tail}")
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        status=status,
        stdout=text,
    )


# Appended to a `python -c` program: print the process's peak RSS (KiB) as it ends.
_PRINT_PEAK = (
    "\nfor _line in open('/proc/self/status'):"
    "\n    _line.startswith('VmHWM:') and print(_line.split()[1])"
)


def peak_rss_mib(python: str, code: str, *, env: Mapping[str, str]) -> float:
    """The peak RSS of `python -P -c code` (its VmHWM as it ends), MiB. -P: the installed
    credd, not a checkout in the current directory."""
    done = run([python, "-P", "-c", code + _PRINT_PEAK], env=env)
    return int(done.stdout.split()[-1]) / 1024


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, resource.struct_rusage]:
    """Block in wait4 (no polling: a busy parent would steal CPU from the child on 2 cores)."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, raw, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    status = os.waitstatus_to_exitcode(raw)
    proc.returncode = status  # reaped here; Popen must not wait for it again
    return status, usage


@dataclass
class Series:
    """Repeated samples of one quantity."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median (the figure quoted)."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The smallest sample."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The largest sample."""
        return max(self.values)


def interleave(reps: int, steps: Mapping[str, Callable[[], None]]) -> None:
    """Run each step once per round, `reps` rounds, rotating which step goes first.

    Rotation spreads any drift (page cache, CPU frequency, moto's growing state)
    evenly over the commands being compared.
    """
    names = list(steps)
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            steps[name]()


def vm_rss_kib(pid: int) -> int:
    """The current resident set of a live process, KiB (VmRSS)."""
    return _status_field(pid, "VmRSS")


def vm_hwm_kib(pid: int) -> int:
    """The peak resident set of a live process so far, KiB (VmHWM)."""
    return _status_field(pid, "VmHWM")


def _status_field(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used so far (utime + stime from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        text = stream.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
