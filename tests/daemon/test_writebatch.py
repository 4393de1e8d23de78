"""Write batching: renewals that land together share one rewrite; a fed code's is not delayed."""

from __future__ import annotations

import asyncio

import pytest

from credd.daemon.writebatch import Updates, WriteBatcher
from credd.errors import FileWriteError


async def test_background_writes_arriving_together_are_one_rewrite() -> None:
    """Ten renewals within the delay: one flush holding all ten sections."""
    flushed: list[list[str]] = []

    async def flush(batch: Updates) -> None:
        flushed.append(sorted(batch))

    batcher = WriteBatcher(flush, delay=0.05)
    await asyncio.gather(*(batcher.write(f"p{i}", {"k": str(i)}, urgent=False) for i in range(10)))
    assert flushed == [sorted(f"p{i}" for i in range(10))]
    assert batcher.rewrites == 1


async def test_an_urgent_write_does_not_wait_for_the_delay() -> None:
    """A fed code's write starts at once (a delay of an hour would otherwise hang the test)."""
    flushed: list[list[str]] = []

    async def flush(batch: Updates) -> None:
        flushed.append(sorted(batch))

    batcher = WriteBatcher(flush, delay=3600)
    await asyncio.wait_for(batcher.write("s", {"k": "v"}, urgent=True), 5)
    assert flushed == [["s"]]


async def test_a_failed_rewrite_reaches_every_writer_in_its_batch() -> None:
    """Disk full: each renewal that waited on that rewrite gets the error."""

    async def flush(batch: Updates) -> None:
        raise FileWriteError("disk full")

    batcher = WriteBatcher(flush, delay=0)
    results = await asyncio.gather(
        batcher.write("a", {}, urgent=False),
        batcher.write("b", {}, urgent=False),
        return_exceptions=True,
    )
    assert all(isinstance(r, FileWriteError) for r in results)


async def test_writes_arriving_during_a_rewrite_go_into_the_next() -> None:
    """Only one rewrite at a time; what comes meanwhile is batched into the following one."""
    flushed: list[list[str]] = []
    gate = asyncio.Event()

    async def flush(batch: Updates) -> None:
        flushed.append(sorted(batch))
        if len(flushed) == 1:
            await gate.wait()

    batcher = WriteBatcher(flush, delay=0)
    first = asyncio.ensure_future(batcher.write("a", {}, urgent=True))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.write(n, {}, urgent=True)) for n in "bcd"]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, *later)
    assert flushed == [["a"], ["b", "c", "d"]]


@pytest.mark.parametrize("pending", [0, 3])
async def test_drain_finishes_what_is_queued(pending: int) -> None:
    """On shutdown every queued write is finished, never abandoned half-way."""
    flushed: list[str] = []

    async def flush(batch: Updates) -> None:
        flushed.extend(batch)

    batcher = WriteBatcher(flush, delay=3600)
    tasks = [
        asyncio.ensure_future(batcher.write(f"p{i}", {}, urgent=False)) for i in range(pending)
    ]
    await asyncio.sleep(0)
    await batcher.drain()
    await asyncio.gather(*tasks)
    assert sorted(flushed) == [f"p{i}" for i in range(pending)]
