"""The connection cap both of the daemon's servers use (credd/daemon/connections.py)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from credd.daemon.connections import Connections


async def test_at_the_cap_the_longest_idle_connection_makes_room_and_busy_ones_stay() -> None:
    """Two allowed: the first waits idle, the second is busy. A third arrives: the idle one
    is dropped (closed) to make room; with only busy ones open, a fourth is turned away."""
    connections = Connections(2, "test")
    release = asyncio.Event()
    served: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def work() -> None:
            name = (await reader.readline()).decode().strip()
            served.append(name)
            if name == "idle":
                connections.idle()
            await release.wait()

        await connections.serve(writer, work)

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = str(Path(tmp) / "s")
        server = await asyncio.start_unix_server(handler, path)
        clients = []
        for name in ("idle", "busy", "third", "fourth"):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(f"{name}\n".encode())
            await writer.drain()
            clients.append((name, reader, writer))
            for _ in range(500):  # until the server has taken it in (or turned it away)
                if name in served or reader.at_eof() or reader.exception() is not None:
                    break
                await asyncio.sleep(0.01)
        ended = {name: reader.at_eof() or await _closed(reader) for name, reader, _ in clients}
        assert ended == {"idle": True, "busy": False, "third": False, "fourth": True}
        assert served == ["idle", "busy", "third"]
        await connections.close()
        for _, _, writer in clients:
            writer.close()
        server.close()


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 0.2) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False
