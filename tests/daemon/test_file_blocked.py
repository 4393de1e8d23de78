"""The credentials file, looked at before a code is spent (SPEC.md "The AWS files, before a
code is spent"), in the daemon on fakes: blocked profiles are `error` at once with the
reason, no code is asked for or used, and they are planned again when the file changes."""

from __future__ import annotations

import pytest
from support.fakes import LONG_TERM, MemoryWriter, Rig, make_rig, settle

from credd.errors import EXIT_FOR_FAULT, BadInputError, Fault
from credd.states import State

CHAIN = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
    duration: 12h
  admin:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/Admin
    duration: 1h
"""
BROKEN = "/memory/credentials:3: section [default] appears twice (first on line 1); fix it"


def states(rig: Rig) -> dict[str, tuple[State, str | None]]:
    return {e.name: (e.state, e.last_error) for e in rig.daemon.entries()}


async def started(writer: MemoryWriter) -> tuple[Rig, list[dict[str, object]]]:
    rig = make_rig(CHAIN, writer)
    await rig.daemon.start()
    await settle()
    events: list[dict[str, object]] = []
    queue = rig.daemon.subscribe()
    while not queue.empty():
        events.append(queue.get_nowait())
    return rig, events


async def beat(rig: Rig) -> None:
    rig.daemon.tick()
    await settle()


async def test_a_broken_file_puts_every_profile_in_error_at_start_and_asks_nothing() -> None:
    """Every profile is `error` with the file's reason and fix, has no timer, and no code is
    asked for: a subscriber has nothing waiting for it."""
    writer = MemoryWriter()
    writer.problem = BROKEN
    rig, events = await started(writer)
    assert states(rig) == {
        "session-x": (State.ERROR, BROKEN),
        "admin": (State.ERROR, BROKEN),
    }
    assert rig.scheduler.jobs == {}
    assert events == []
    assert "awaiting code" not in rig.daemon.status_text()


async def test_a_code_for_a_blocked_profile_is_refused_before_it_is_used() -> None:
    """`credctl token --profile session-x`: refused (exit 1) naming the reason; STS is never
    called, so the code is not spent; a refresh reports the blocked profiles as failed."""
    writer = MemoryWriter()
    writer.problem = BROKEN
    rig, _ = await started(writer)
    with pytest.raises(BadInputError) as refused:
        await rig.daemon.feed_code("123456", "session-x")
    assert refused.value.fault == Fault.NOTHING_TO_RENEW
    assert EXIT_FOR_FAULT[refused.value.fault] == 1  # what credctl exits with
    assert "the code was not used" in refused.value.message
    assert BROKEN in refused.value.message
    with pytest.raises(BadInputError):
        await rig.daemon.feed_code("123456", None)
    result = await rig.daemon.refresh([])
    assert result["failed"] == [{"profile": "admin", "state": "error", "error": BROKEN}]
    assert rig.sts.calls == []
    assert writer.batches == []


async def test_the_fixed_file_is_noticed_by_the_next_heartbeat() -> None:
    """Once the file is fixed, the next heartbeat plans the profiles again: the session
    asks for a code, with no error left over; the role follows it."""
    writer = MemoryWriter()
    writer.problem = BROKEN
    rig, _ = await started(writer)
    await beat(rig)
    assert states(rig)["session-x"] == (State.ERROR, BROKEN), "nothing changed: still blocked"
    queue = rig.daemon.subscribe()
    writer.break_file(None)
    await beat(rig)
    assert states(rig)["session-x"] == (State.AWAITING_CODE, None)
    assert queue.get_nowait()["event"] == "code-needed"
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    assert states(rig) == {"session-x": (State.FRESH, None), "admin": (State.FRESH, None)}


async def test_a_file_that_breaks_while_running_blocks_at_once_and_recovers() -> None:
    """Fresh profiles: the file turns unusable, the next heartbeat makes them `error` and
    drops their timers (nothing could be written); fixed, they are fresh and planned again
    with the credentials held."""
    rig, _ = await started(MemoryWriter())
    await rig.daemon.feed_code("123456", "session-x")
    await settle()
    held = rig.daemon.entry("session-x").credentials  # type: ignore[union-attr]
    rig.writer.break_file(BROKEN)
    await beat(rig)
    assert states(rig)["session-x"] == (State.ERROR, BROKEN)
    assert rig.scheduler.jobs == {}
    rig.writer.break_file(None)
    await beat(rig)
    assert states(rig) == {"session-x": (State.FRESH, None), "admin": (State.FRESH, None)}
    assert rig.daemon.entry("session-x").credentials is held  # type: ignore[union-attr]
    assert set(rig.scheduler.jobs) >= {"session-x"}


async def test_a_source_without_keys_blocks_its_session_until_the_keys_are_added() -> None:
    """`default` has no secret in the file: the session is `error` saying how to add the
    keys, and no code is asked; once `aws configure` adds them, it asks for a code."""
    writer = MemoryWriter({"default": {"aws_access_key_id": "AKIAFAKELONGTERM0001"}})
    rig, events = await started(writer)
    state, error = states(rig)["session-x"]
    assert state is State.ERROR and error is not None
    assert "source profile default has no aws_access_key_id and aws_secret_access_key" in error
    assert "`aws configure --profile default`" in error
    assert events == []
    writer.overwrite("default", LONG_TERM)
    await beat(rig)
    assert states(rig)["session-x"] == (State.AWAITING_CODE, None)
    assert rig.sts.calls == []


async def test_a_reload_looks_at_the_file_again() -> None:
    """A reload (as SIGHUP) looks at the file too: a fixed file frees the profiles."""
    writer = MemoryWriter()
    writer.problem = BROKEN
    rig, _ = await started(writer)
    writer.problem = None  # fixed with no change the heartbeat could see yet
    await rig.daemon.reload()
    await settle()
    assert states(rig)["session-x"] == (State.AWAITING_CODE, None)
