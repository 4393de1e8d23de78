"""Where a code comes from besides the socket: the policy's `notify` and `code_command`.

`CodeSources` is the daemon's `CodeHelper`. When a profile needs a code it

- runs the profile's `notify` argv (`{profile}`, `{mfa_serial}` and
  `{message}` filled in) in the background and does not wait for it beyond a
  short timeout; a notifier that cannot start, fails or hangs is logged once
  per distinct failure and never stops anything;
- runs the profile's `code_command` argv and returns the code it prints when
  that is exactly six ASCII digits. Anything else (no output, other text,
  a non-zero exit, a missing program, a timeout) is logged as a warning that
  names the profile and the reason, and None is returned, so credd keeps
  asking over the socket (`credctl token`, `credctl prompt`).

Both run with no shell, stdin from /dev/null and in a session of their own, so
a timeout kills the whole process group (a shell script's children too). What a
code command prints is never logged: it may be a code, or a secret printed by
mistake; its stderr is discarded for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from credd.durations import format_duration
from credd.policy import Profile

log = logging.getLogger(__name__)

# A GUI dialog waits for a person; a YubiKey may wait for a touch.
CODE_COMMAND_TIMEOUT_SECONDS = 60.0
# A notifier only has to hand the message on (notify-send, osascript).
NOTIFY_TIMEOUT_SECONDS = 10.0
# A code is 6 digits and a newline; ykman and op print nothing more. More is a mistake.
MAX_CODE_OUTPUT_BYTES = 4096
# Once the command has exited, how long its stdout may stay open (held by a child it left).
EOF_GRACE_SECONDS = 0.5

# SPEC.md: exactly six ASCII digits. On bytes, so non-ASCII digits never match.
_CODE = re.compile(rb"[0-9]{6}")
# Filled in one pass, so a value that itself looks like `{message}` is never expanded again.
_PLACEHOLDER = re.compile(r"\{(profile|mfa_serial|message)\}")


class _CommandFailed(Exception):
    """A command gave no usable result; the message is the reason (never its output)."""


def notify_argv(argv: Sequence[str], profile: Profile, message: str) -> list[str]:
    """`argv` with `{profile}`, `{mfa_serial}` and `{message}` filled in; other braces stay."""
    values = {
        "profile": profile.name,
        "mfa_serial": profile.mfa_serial or "",
        "message": message,
    }
    return [_PLACEHOLDER.sub(lambda match: values[match[1]], arg) for arg in argv]


class CodeSources:
    """`daemon.CodeHelper` over the policy's `notify` and `code_command` argvs.

    The timeouts are keyword arguments so tests can use short ones.
    """

    def __init__(
        self,
        *,
        code_timeout: float = CODE_COMMAND_TIMEOUT_SECONDS,
        notify_timeout: float = NOTIFY_TIMEOUT_SECONDS,
        max_output: int = MAX_CODE_OUTPUT_BYTES,
    ) -> None:
        self._code_timeout = code_timeout
        self._notify_timeout = notify_timeout
        self._max_output = max_output
        self._notify_failures: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def code_needed(self, profile: Profile, message: str) -> str | None:
        """Notify (in the background) and run the code command; its code, or None."""
        if profile.notify:
            task = asyncio.get_running_loop().create_task(
                self.notify(profile.notify, profile, message)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if not profile.code_command:
            return None
        return await self.code_from_command(profile.code_command, profile)

    @property
    def notifying(self) -> int:
        """How many notifiers are running now."""
        return len(self._background)

    async def wait_notifications(self) -> None:
        """Wait for the notifiers still running to end (each within its timeout)."""
        if self._background:
            await asyncio.wait(list(self._background))

    async def close(self) -> None:
        """Stop the notifiers still running (their process groups are killed)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def notify(self, argv: Sequence[str], profile: Profile, message: str) -> None:
        """Run one notifier to its end or its timeout; log a failure once, never raise."""
        program = os.path.basename(argv[0])
        try:
            status = await _run(
                notify_argv(argv, profile, message),
                timeout=self._notify_timeout,
                capture=False,
            )
        except _CommandFailed as failure:
            reason = str(failure)
        else:
            if status.returncode == 0:
                return
            reason = _exit_reason(status.returncode)
        key = (program, reason)
        if key in self._notify_failures:
            log.debug("%s: notify command %s %s (again)", profile.name, program, reason)
            return
        self._notify_failures.add(key)
        log.warning(
            "%s: notify command %s %s; later failures like this are not logged",
            profile.name,
            program,
            reason,
        )

    async def code_from_command(self, argv: Sequence[str], profile: Profile) -> str | None:
        """The code `argv` prints, or None (with a warning saying why) when it gives none."""
        program = os.path.basename(argv[0])
        try:
            status = await _run(
                list(argv),
                timeout=self._code_timeout,
                capture=True,
                max_output=self._max_output,
            )
            code = _code_from(status, self._max_output)
        except _CommandFailed as failure:
            log.warning(
                "%s: code command %s gave no code: %s; asking over the socket instead"
                " (credctl token, credctl prompt)",
                profile.name,
                program,
                failure,
            )
            return None
        log.info("%s: code from code command %s", profile.name, program)
        return code


@dataclass(frozen=True)
class _Finished:
    """How a command ended, and what it printed (bounded)."""

    returncode: int
    output: bytes = field(repr=False)  # may be a code or a secret
    overflowed: bool = False


def _code_from(status: _Finished, max_output: int) -> str:
    """The six digits a finished code command printed, or _CommandFailed with the reason."""
    if status.overflowed:
        raise _CommandFailed(f"printed more than {max_output} bytes")
    if status.returncode != 0:
        raise _CommandFailed(_exit_reason(status.returncode))
    text = status.output.strip()
    if not text:
        raise _CommandFailed("printed nothing")
    if not _CODE.fullmatch(text):
        # Its length only: the text itself may be a code or a secret.
        raise _CommandFailed(
            f"printed {len(text)} bytes that are not exactly 6 digits (0-9)"
            " (the output is not logged)"
        )
    return text.decode("ascii")


async def _run(argv: list[str], *, timeout: float, capture: bool, max_output: int = 0) -> _Finished:
    """Run `argv` (no shell) in its own session; kill its process group at the timeout.

    stdout is a pipe of our own rather than asyncio's PIPE: in Python 3.11
    `Process.wait()` also waits for asyncio's pipes to close, so a child the
    command left holding stdout, or output nobody reads any more, would hold
    it up until the timeout.
    """
    loop = asyncio.get_running_loop()
    capture_pipe: _Capture | None = None
    write_end: int | None = None
    if capture:
        read_end, write_end = os.pipe()
        capture_pipe = _Capture(max_output)
        await loop.connect_read_pipe(lambda: capture_pipe, os.fdopen(read_end, "rb", buffering=0))
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_end if write_end is not None else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in an argument
        if capture_pipe is not None:
            capture_pipe.close()
        reason = error.strerror if isinstance(error, OSError) else None
        raise _CommandFailed(f"cannot be started: {reason or type(error).__name__}") from None
    finally:
        if write_end is not None:
            os.close(write_end)  # the command holds its own copy
    if capture_pipe is not None:
        capture_pipe.on_overflow = lambda: _kill_group(process)
    try:
        await asyncio.wait_for(process.wait(), timeout)
        if capture_pipe is not None:
            # What it printed by the time it exited, plus a moment for the pipe to drain.
            await asyncio.wait({capture_pipe.done}, timeout=EOF_GRACE_SECONDS)
    except TimeoutError:
        _kill_group(process)
        await _reap(process)
        raise _CommandFailed(
            f"did not finish within {format_duration(max(1, round(timeout)))}; killed"
        ) from None
    except BaseException:
        # Cancelled (the daemon stopping): leave nothing running behind.
        _kill_group(process)
        await _reap(process)
        raise
    finally:
        if capture_pipe is not None:
            capture_pipe.close()
    if capture_pipe is None:
        return _Finished(process.returncode or 0, b"")
    return _Finished(
        process.returncode or 0, bytes(capture_pipe.data), overflowed=capture_pipe.overflowed
    )


class _Capture(asyncio.Protocol):
    """Keeps at most `limit` bytes of a pipe; past that it stops reading and calls on_overflow."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.overflowed = False
        self.on_overflow: Callable[[], None] = lambda: None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The pipe is open."""
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Keep what fits; end the command when more comes (nobody would read it)."""
        if self.overflowed:
            return
        self.data += data
        if len(self.data) > self.limit:
            self.overflowed = True
            del self.data[self.limit :]
            self.on_overflow()
            self.close()

    def eof_received(self) -> bool | None:
        """Every writer closed the pipe."""
        self._finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """The pipe is closed."""
        self._finish()

    def close(self) -> None:
        """Stop reading and close our end."""
        if self._transport is not None:
            self._transport.close()
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _kill_group(process: Any) -> None:
    """SIGKILL the process's whole group (it leads its own session), children included.

    Sent even when the leader has exited: a child it left may still be running.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _reap(process: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"
