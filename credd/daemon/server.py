"""The control socket server: newline-delimited JSON over a Unix socket, on the event loop.

Each connection is checked for its peer's uid before anything is read; requests
are size-limited; a silent or slow client is dropped after an idle timeout; a
client that stops reading is dropped rather than waited for. None of them can
stall the loop or the other clients.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from typing import Any

from credd import protocol
from credd.daemon.connections import Connections
from credd.daemon.core import Daemon
from credd.daemon.sockets import Listener
from credd.errors import BadInputError, Fault
from credd.socketcheck import peer_uid

log = logging.getLogger(__name__)

# At most this many open connections. At the cap, the connection that has waited longest
# for a request is dropped to make room (so idle clients cannot lock `credctl` out); a new
# one is closed at once only when every open one is busy.
MAX_CONNECTIONS = 256
# Descriptors kept free for everything else (STS connections, the credentials file, code
# commands) plus what asyncio accepts in one go (its accept backlog, 100) before our code runs.
FD_RESERVE = 64 + 100
MIN_CONNECTIONS = 8
# A reply that cannot be handed to the client in this long means it stopped reading.
SEND_TIMEOUT_SECONDS = 5.0


class ControlServer:
    """Serves the daemon's requests on an already bound listener."""

    def __init__(self, listener: Listener, daemon: Daemon) -> None:
        self._listener = listener
        self._daemon = daemon
        self._server: asyncio.AbstractServer | None = None
        self._connections = Connections(connection_limit(), "control")
        self._uid = os.getuid()

    async def start(self) -> None:
        """Start accepting connections."""
        self._server = await asyncio.start_unix_server(
            self._accept, sock=self._listener.sock, limit=protocol.MAX_REQUEST_BYTES
        )

    def stop_accepting(self) -> None:
        """Take no new connection; the open ones go on (a stopping daemon still says goodbye)."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop accepting and end every open connection."""
        self.stop_accepting()
        await self._connections.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._connections.serve(writer, lambda: self._checked(reader, writer))

    async def _checked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid != self._uid:
            log.warning("refused a control connection from uid %d", uid)
            return
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            self._connections.idle()
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
            self._connections.busy()
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
        # A subscriber sends nothing more: EOF, or any byte, means it left (or misbehaves),
        # and a bounded read never buffers what it streams.
        gone = asyncio.ensure_future(reader.read(1))
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


def connection_limit(cap: int = MAX_CONNECTIONS) -> int:
    """How many control connections fit in this process's RLIMIT_NOFILE, at most `cap`."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(MIN_CONNECTIONS, min(cap, soft - FD_RESERVE))


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(protocol.encode(message))
    await asyncio.wait_for(writer.drain(), SEND_TIMEOUT_SECONDS)
