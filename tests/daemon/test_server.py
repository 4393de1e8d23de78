"""The control socket server (credd/daemon/server.py) with a daemon on fakes."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from support.fakes import make_rig

from credd import protocol
from credd.daemon.server import ControlServer
from credd.daemon.sockets import claim

SESSION = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
"""


async def test_a_subscriber_that_sends_data_is_hung_up_on_not_buffered() -> None:
    """Hazard: a subscribed `credctl prompt` sends nothing more; one that streams bytes at
    the daemon is hung up on at once, instead of having its input buffered without a limit
    until it closes."""
    rig = make_rig(SESSION)
    await rig.daemon.start()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        listener = claim(Path(tmp) / "s" / "credd.sock")
        server = ControlServer(listener, rig.daemon)
        await server.start()
        reader, writer = await asyncio.open_unix_connection(str(listener.path))
        writer.write(protocol.encode({"op": "subscribe"}))
        reply = protocol.decode(await reader.readline())
        assert reply == {"ok": True, "result": {"subscribed": True}}
        writer.write(b"x" * 65536)  # no newline, no end: a client streaming at the daemon
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # EOF: the daemon hung up
        assert b"x" not in rest
        writer.close()
        await server.close()
        listener.close()
