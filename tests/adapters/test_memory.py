"""credd.adapters.memory: one malloc arena (bench/ #7); the collector paused for the start (#6)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest

from credd.adapters import memory
from credd.adapters.memory import (
    M_ARENA_MAX,
    TCACHE_OFF,
    one_arena,
    pause_collector,
    restart_without_thread_caches,
    resume_collector,
)


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


class _Exec:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []

    def __call__(self, path: str, args: list[str], env: dict[str, str]) -> None:
        self.calls.append((path, list(args), dict(env)))


def test_credd_run_execs_itself_once_with_the_thread_caches_off() -> None:
    """Under glibc: the same command line, through this interpreter, with the tunable."""
    execve = _Exec()
    env = {"HOME": "/h"}
    argv = ["/venv/bin/credd", "run", "--log-level", "debug"]
    assert restart_without_thread_caches(env, argv, execve) is True
    assert execve.calls == [
        (
            sys.executable,
            [sys.executable, "run", "--log-level", "debug"],
            {
                "HOME": "/h",
                "GLIBC_TUNABLES": TCACHE_OFF,
            },
        )
    ]


def test_the_users_own_tunables_are_kept_and_a_tcache_setting_of_theirs_wins() -> None:
    execve = _Exec()
    env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert restart_without_thread_caches(env, ["credd", "run"], execve) is True
    assert execve.calls[0][2]["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{TCACHE_OFF}"
    # The exec'd process sees the setting and goes on; so does one whose user chose a size.
    for tunables in (TCACHE_OFF, "glibc.malloc.tcache_count=3"):
        again = _Exec()
        assert not restart_without_thread_caches({"GLIBC_TUNABLES": tunables}, ["credd"], again)
        assert again.calls == []


def test_elsewhere_than_glibc_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(memory.os, "confstr", no_such_name)
    execve = _Exec()
    assert restart_without_thread_caches({}, ["credd", "run"], execve) is False
    assert execve.calls == []


def test_an_exec_that_fails_leaves_the_daemon_to_start_as_it_is() -> None:
    def failing(path: str, args: list[str], env: dict[str, str]) -> None:
        raise PermissionError(13, "Permission denied")

    assert restart_without_thread_caches({}, ["credd", "run"], failing) is False
