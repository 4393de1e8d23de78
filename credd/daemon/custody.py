"""Custody of the credentials file: batched writes, the heartbeat's look, carry-over.

The daemon hands every write here. Writes that land together go into one rewrite
(writebatch.py); each rewrite runs in a worker thread with the writer that was in
force when it began, so a reload that moves the daemon to another file never
sends a batch to the wrong one, and the old writer is closed off the event loop
once its last rewrite is over (closing can wait for its lock).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from credd.credentials import Credentials
from credd.daemon.writebatch import Updates, WriteBatcher
from credd.errors import CreddError
from credd.files.writer import FileHealth

log = logging.getLogger(__name__)

T = TypeVar("T")

Sections = Mapping[str, Mapping[str, str]]
Signature = tuple[int, ...]

# After a write, the writer keeps the file it replaced open for a moment, to carry over a
# late write into it (credd.files.writer.WATCH_SECONDS); it is looked at, and let go, after
# this. A sub-second I/O coalescing delay of the file's own, not a wait of any profile's.
CARRY_OVER_SECONDS = 0.75


class CredentialsStore(Protocol):
    """The safe writer of one credentials file, as the daemon uses it (files/writer.py)."""

    def read(self) -> dict[str, dict[str, str]]:
        """The parsed file; raises CredentialsFileError."""
        ...

    def update(self, updates: Mapping[str, Mapping[str, str | None]]) -> None:
        """Set or remove keys of sections in one atomic write; raises CreddError."""
        ...

    def signature(self) -> Signature | None:
        """The file's identity now, or None when it is absent."""
        ...

    def inspect(self) -> FileHealth:
        """Whether the file can be used as it stands (never raises)."""
        ...

    def inspect_and_read(self) -> tuple[FileHealth, dict[str, dict[str, str]]]:
        """`inspect`, and the sections it read (none when there is a problem)."""
        ...

    def carry_over(self) -> list[str]:
        """Bring back late writes into a replaced file; returns the sections changed."""
        ...

    @property
    def watching(self) -> bool:
        """Whether replaced files are still held for `carry_over`."""
        ...

    def close(self) -> None:
        """Let go of every replaced file still held."""
        ...


class FileCustody:
    """Everything the daemon does to its credentials file."""

    def __init__(
        self,
        path: Path,
        *,
        writer_for: Callable[[Path], CredentialsStore],
        executor: Executor,
        write_delay: float,
    ) -> None:
        self._writer_for = writer_for
        self._executor = executor
        self.path = path
        self._writer = writer_for(path)
        self._writes = WriteBatcher(self._flush, delay=write_delay)
        self._seen: Signature | None = None
        self._inspected: Signature | None = None
        self._carry_over_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self) -> dict[str, dict[str, str]]:
        """The file's sections (in a worker thread); raises CredentialsFileError."""
        writer = self._writer
        return await self._in_thread(writer.read)

    async def write(self, name: str, credentials: Credentials, *, urgent: bool) -> None:
        """Put `credentials` into section `name`; returns once they are on disk."""
        await self._writes.write(name, credentials.as_file_keys(), urgent=urgent)

    async def changed_sections(self, held: Mapping[str, Credentials]) -> list[str]:
        """The profiles of `held` whose section another program changed since the last look.

        The AWS CLI rewrites the file in place with no lock: when it read the file before
        one of credd's renames and writes after it, its write replaces credd's renewal.
        The file's identity (inode, size, mtime) is checked; only a change costs a read.
        """
        writer = self._writer
        signature = await self._in_thread(writer.signature)
        if signature is None or signature == self._seen:
            return []
        self._seen = signature
        try:
            sections = await self._in_thread(writer.read)
        except CreddError:
            return []  # unparseable: the next write reports it in the profile
        changed = []
        for name, creds in held.items():
            section = sections.get(name, {})
            if (
                section.get("aws_access_key_id") != creds.access_key_id
                or section.get("aws_session_token") != creds.session_token
            ):
                changed.append(name)
        return changed

    async def inspect(self, path: Path | None = None) -> FileHealth:
        """Look at the file (or at `path`, the file a reload moves to) before it is used."""
        if path is None or path == self.path:
            health, _ = await self.inspect_and_read()
            return health
        other = self._writer_for(path)
        try:
            return await self._in_thread(other.inspect)
        finally:
            await self._in_thread(other.close)

    async def inspect_and_read(self) -> tuple[FileHealth, dict[str, dict[str, str]]]:
        """`inspect`, with the sections it read: the daemon's start, with one read."""
        writer = self._writer
        signature = await self._in_thread(writer.signature)
        health, sections = await self._in_thread(writer.inspect_and_read)
        self._inspected = signature
        return health, sections

    async def inspect_if_changed(self, *, force: bool) -> FileHealth | None:
        """`inspect` again if the file changed since the last look (or if `force`), else None.

        The signature covers chmod, chown and new hard links too: fixing a problem the
        last look found counts as a change.
        """
        writer = self._writer
        signature = await self._in_thread(writer.signature)
        if signature == self._inspected and not force:
            return None
        health = await self._in_thread(writer.inspect)
        self._inspected = signature
        return health

    def move_to(self, path: Path) -> None:
        """Use another file from now on (a reload changed `credentials_file`)."""
        if path == self.path:
            return
        old, old_runner = self._writer, self._writes.runner
        self.path, self._writer, self._seen = path, self._writer_for(path), None
        self._inspected = None
        self._spawn(self._close_after(old, old_runner))

    async def stop(self) -> None:
        """Finish every queued write (never stop in the middle of one); let go of the files."""
        self._stopping = True
        if self._carry_over_timer is not None:
            self._carry_over_timer.cancel()
            self._carry_over_timer = None
        for task in list(self._tasks):
            task.cancel()
        await self._writes.drain()

    async def _flush(self, updates: Updates) -> None:
        writer = self._writer  # chosen on the loop: a reload can't swap it mid-batch
        await self._in_thread(lambda: writer.update(updates))
        self._carry_over_later()

    async def _close_after(
        self, writer: CredentialsStore, runner: asyncio.Task[None] | None
    ) -> None:
        if runner is not None:
            await asyncio.wait([runner])
        await self._in_thread(writer.close)

    def _carry_over_later(self) -> None:
        if self._carry_over_timer is None and not self._stopping:
            self._carry_over_timer = asyncio.get_running_loop().call_later(
                CARRY_OVER_SECONDS, self._carry_over_now
            )

    def _carry_over_now(self) -> None:
        self._carry_over_timer = None
        self._spawn(self._carry_over())

    async def _carry_over(self) -> None:
        """Bring back what another program wrote into a file credd has just replaced."""
        writer = self._writer
        try:
            await self._in_thread(writer.carry_over)
        except CreddError as error:
            log.error("%s", error.message)
        if writer.watching:
            self._carry_over_later()

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
