"""The control socket server: newline-delimited JSON over a Unix socket, on the event loop.

Each connection is checked for its peer's uid before anything is read; requests
are size-limited; a silent or slow client is dropped after an idle timeout; a
client that stops reading is dropped rather than waited for. None of them can
stall the loop or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from credd import protocol
from credd.daemon import Daemon
from credd.errors import BadInputError, Fault
from credd.sockets import Listener, peer_uid

log = logging.getLogger(__name__)

# Beyond this many open connections new ones are closed at once.
MAX_CONNECTIONS = 256
# A reply that cannot be handed to the client in this long means it stopped reading.
SEND_TIMEOUT_SECONDS = 5.0


class ControlServer:
    """Serves the daemon's requests on an already bound listener."""

    def __init__(self, listener: Listener, daemon: Daemon) -> None:
        self._listener = listener
        self._daemon = daemon
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._uid = os.getuid()

    async def start(self) -> None:
        """Start accepting connections."""
        self._server = await asyncio.start_unix_server(
            self._accept, sock=self._listener.sock, limit=protocol.MAX_REQUEST_BYTES
        )

    async def close(self) -> None:
        """Stop accepting and end every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("too many control connections; closing a new one")
            writer.close()
            return
        self._connections.add(task)
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid != self._uid:
                log.warning("refused a control connection from uid %d", uid)
                return
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), protocol.IDLE_TIMEOUT_SECONDS)
            except TimeoutError:
                return
            except ValueError:  # the line outgrew the stream's limit
                await _send(
                    writer,
                    protocol.failure(
                        Fault.REQUEST_TOO_LARGE,
                        f"request is larger than {protocol.MAX_REQUEST_BYTES} bytes",
                    ),
                )
                return
            if not line:
                return
            try:
                request = protocol.decode_request(line)
            except BadInputError as error:
                await _send(writer, protocol.failure_from(error))
                return
            if request["op"] == "subscribe":
                await self._stream(reader, writer)
                return
            await _send(writer, await self._daemon.handle(request))

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`credctl prompt`: events until the client leaves or the daemon stops."""
        queue = self._daemon.subscribe()
        gone = asyncio.ensure_future(reader.read())  # EOF (or anything) means the client left
        try:
            await _send(writer, protocol.ok({"subscribed": True}))
            while True:
                event = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({event, gone}, return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    event.cancel()
                    return
                message = event.result()
                await _send(writer, message)
                if message.get("event") == "shutdown":
                    return
        finally:
            gone.cancel()
            self._daemon.unsubscribe(queue)


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(protocol.encode(message))
    await asyncio.wait_for(writer.drain(), SEND_TIMEOUT_SECONDS)
