"""Regressions for the paths where a profile was stranded or a request went unanswered.

Each test is named after the bug it pins (issue #11) and failed before its fix: a
profile with no credentials, no timer, no renewal in flight and no one asked for a
code; a code AWS took and then threw away; a stop that raised; a request with no
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from support.fakes import (
    LONG_TERM,
    HeldExecutor,
    MemorySts,
    MemoryWriter,
    Rig,
    make_policy,
    make_rig,
    settle,
)

from credd.credentials import Credentials
from credd.daemon.custody import FileCustody
from credd.errors import CodeRejectedError, CreddError, Fault, FileWriteError, StsError
from credd.policy import Profile
from credd.states import State

SESSION = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
    duration: 1h
    refresh_before: 15m
"""


class RecordingHelper:
    """A code helper (notify / code_command) that records each request and gives no code."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def code_needed(self, profile: Profile, message: str) -> str | None:
        self.asked.append(profile.name)
        return None


def entry_of(rig: Rig, name: str) -> Any:
    entry = rig.daemon.entry(name)
    assert entry is not None
    return entry


def code_needed_events(queue: asyncio.Queue[dict[str, Any]], name: str) -> int:
    count = 0
    while not queue.empty():
        event = queue.get_nowait()
        if event.get("event") == "code-needed" and event.get("profile") == name:
            count += 1
    return count


async def test_writes_failing_until_expiry_end_in_a_request_for_a_code() -> None:
    """Bug 1: a session whose writes keep failing until its credentials expire asks for a
    code (event, helper) at its renewal time, and `credctl token` goes to it; before, it
    stayed in `error` with no timer and "no profile takes an MFA code right now"."""
    writer = MemoryWriter()
    writer.fail = [FileWriteError("/x/credentials: No space left on device")] * 1000
    rig = make_rig(SESSION, writer)
    helper = RecordingHelper()
    rig.daemon._code_helper = helper
    await rig.daemon.start()
    await settle()
    with_code = rig.daemon.feed_code("123456", "session-x")
    try:
        await with_code
    except CreddError as error:
        assert "No space left" in error.message
    queue = rig.daemon.subscribe()
    code_needed_events(queue, "session-x")
    for _ in range(40):  # 40 x 5 min: well past the 1 h expiry, every timer fired
        rig.clock.advance(300)
        await rig.scheduler.run_due()
        rig.daemon.tick()
        await settle()
    entry = entry_of(rig, "session-x")
    assert entry.state is State.AWAITING_CODE
    assert code_needed_events(queue, "session-x") >= 1
    assert helper.asked.count("session-x") >= 2  # at start, and again at renewal time
    writer.fail = []
    reply = await rig.daemon.feed_code("654321", None)
    assert reply["profile"] == "session-x"
    assert entry_of(rig, "session-x").state is State.FRESH


async def test_a_code_rejected_for_a_profile_in_error_asks_the_person_again() -> None:
    """Bug 2: after AWS refused the long-term keys (`error`), a code it then rejects leaves
    the profile awaiting a code that the person has been told about (event, helper);
    before, it became `awaiting-code` silently."""
    rig = make_rig(SESSION)
    helper = RecordingHelper()
    rig.daemon._code_helper = helper
    await rig.daemon.start()
    await settle()
    queue = rig.daemon.subscribe()
    code_needed_events(queue, "session-x")
    helper.asked.clear()
    rig.sts.fail = [StsError("STS refused: InvalidClientTokenId: the keys are not valid")]
    with contextlib.suppress(CreddError):
        await rig.daemon.feed_code("123456", "session-x")
    assert entry_of(rig, "session-x").state is State.ERROR
    rig.sts.fail = [CodeRejectedError("the code was not accepted")]
    with contextlib.suppress(CodeRejectedError):
        await rig.daemon.feed_code("234567", "session-x")
    await settle()
    assert entry_of(rig, "session-x").state is State.AWAITING_CODE
    assert code_needed_events(queue, "session-x") >= 1
    assert helper.asked == ["session-x"]


class GatedSts(MemorySts):
    """MemorySts whose calls wait (in a worker thread) until the test opens the gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def get_session_token(self, **kwargs: Any) -> Credentials:  # type: ignore[override]
        self.entered.set()
        assert self.gate.wait(10)
        return super().get_session_token(**kwargs)


async def test_a_reload_during_an_sts_call_keeps_the_code_aws_took() -> None:
    """Bug 3: a reload that changes a profile while its STS call (with a code) is in flight
    lets the call finish; its credentials serve the new profile and are written, the feeder
    gets its answer, and no second call is made. Before, the call was cancelled and the
    feeder got no answer."""
    from support.fakes import FakeClock

    clock = FakeClock()
    sts = GatedSts(clock)
    with ThreadPoolExecutor(2) as pool:
        rig = make_rig(SESSION, executor=pool, sts=sts, clock=clock)
        await rig.daemon.start()
        await settle()
        feeding = asyncio.ensure_future(rig.daemon.feed_code("123456", "session-x"))
        while not sts.entered.is_set():
            await asyncio.sleep(0.01)
        changed = make_policy(SESSION.replace("refresh_before: 15m", "refresh_before: 20m"))
        rig.daemon._load_policy = lambda: changed
        await rig.daemon.reload()
        assert entry_of(rig, "session-x").busy, "the new entry waits for the call in flight"
        calls = await rig.daemon.refresh(["session-x"])
        assert calls["awaiting_code"] == ["session-x"]
        sts.gate.set()
        reply = await asyncio.wait_for(feeding, 10)
        await settle()
    assert reply["profile"] == "session-x" and reply["expires_at"] is not None
    entry = entry_of(rig, "session-x")
    assert entry.profile.refresh_before == 20 * 60
    assert entry.state is State.FRESH and entry.credentials is not None
    assert rig.writer.sections["session-x"]["aws_access_key_id"] == "ASIAFAKE000000000001"
    assert [c.code for c in sts.calls] == ["123456"], "the code was sent once"


async def test_stop_with_a_stalled_prompt_subscriber_stops_cleanly() -> None:
    """Bug 4: a `credctl prompt` that stopped reading (its queue full) does not make stop()
    raise QueueFull; it is dropped and the other subscribers still get `shutdown`."""
    rig = make_rig(SESSION)
    await rig.daemon.start()
    await settle()
    stalled = rig.daemon.subscribe()
    while not stalled.full():
        stalled.put_nowait({"event": "code-needed", "profile": "session-x"})
    reading = rig.daemon.subscribe()
    code_needed_events(reading, "session-x")
    await rig.daemon.stop()
    assert reading.get_nowait() == {"event": "shutdown"}


class RecordingWriter(MemoryWriter):
    """Records the thread each call runs in."""

    def __init__(self) -> None:
        super().__init__({"default": LONG_TERM})
        self.close_thread: int | None = None

    def close(self) -> None:
        self.close_thread = threading.get_ident()
        super().close()


async def test_the_old_writer_is_closed_off_the_event_loop() -> None:
    """Hazard: closing a writer can wait seconds for its lock, so a reload that moves the
    credentials file closes the old one in a worker thread, never on the event loop."""
    writer = RecordingWriter()
    with ThreadPoolExecutor(2) as pool:
        rig = make_rig(SESSION.replace("session-x", "ops"), writer, executor=pool)
        await rig.daemon.start()
        rig.daemon._load_policy = lambda: make_policy(
            SESSION + "credentials_file: /tmp/credd-elsewhere/credentials\n"
        )
        await rig.daemon.reload()
        for _ in range(100):
            if writer.close_thread is not None:
                break
            await asyncio.sleep(0.01)
    assert writer.close_thread is not None
    assert writer.close_thread != threading.get_ident()


async def test_a_batch_lands_in_the_file_in_force_when_it_was_flushed() -> None:
    """Hazard: a batch's writer is chosen on the event loop when the batch is flushed; a
    reload that moves the file meanwhile neither redirects it nor closes its writer under
    it. Before, the worker thread looked the writer up whenever it got to run."""
    old, new = MemoryWriter(), MemoryWriter()
    writers = iter([old, new])
    held = HeldExecutor()
    custody = FileCustody(
        Path("/a/credentials"), writer_for=lambda _p: next(writers), executor=held, write_delay=0
    )
    write = asyncio.ensure_future(
        custody.write("x", Credentials("ASIAX", "s", "t", None), urgent=True)
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert held.held, "the batch is flushed and waits for a worker"
    custody.move_to(Path("/b/credentials"))
    for _ in range(20):
        held.run_all()
        await asyncio.sleep(0)
    await write
    assert "x" in old.sections and "x" not in new.sections
    assert old.closed and not new.closed


async def test_an_unexpected_failure_in_a_request_is_answered_internal() -> None:
    """Hazard: a request that fails in a way credd did not foresee still gets an answer,
    the INTERNAL fault, with no details of the failure."""
    rig = make_rig(SESSION)
    await rig.daemon.start()

    def broken() -> dict[str, Any]:
        raise RuntimeError("boom with details")

    rig.daemon.status = broken  # type: ignore[method-assign]
    reply = await rig.daemon.handle({"op": "status"})
    assert reply["ok"] is False
    assert reply["error"]["code"] == Fault.INTERNAL
    assert "details" not in reply["error"]["message"]
