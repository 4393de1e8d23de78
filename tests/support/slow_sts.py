"""A light STS stand-in that answers every call after a fixed delay, many calls at once.

Against AWS an STS call mostly waits on the network; moto's server spends its own CPU
on every call, on one interpreter, so it measures itself. This stand-in answers
GetSessionToken and AssumeRole (any keys, serial and code) with fresh credentials
after `latency` seconds, on one asyncio loop: the wait costs it no CPU, and the rest of
a call (read the request, format a fixed XML answer) a small fraction of what a
boto3 client spends on the same call. `GET /stats` answers `calls max_in_flight` (the
most calls it held at once) and resets both.

It runs as its own process, so that its CPU time can be read apart from its client's
(bench/, issue 15) and its in-flight count is the truth of what reached it
(tests/daemon/test_sts_concurrency.py):

    with slow_sts_server(latency=0.03) as server:
        env["AWS_ENDPOINT_URL_STS"] = server.url

    python tests/support/slow_sts.py --port PORT --latency 0.03
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

STARTUP_TIMEOUT = 15.0
_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_ROLE = (
    "<AssumedRoleUser><AssumedRoleId>AROASTANDIN:credd</AssumedRoleId>"
    "<Arn>{arn}</Arn></AssumedRoleUser>"
)


class _Stats:
    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0


def _credentials(seq: int, duration: int) -> str:
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + duration))
    unique = f"{os.getpid():08X}{seq:08X}"
    return (
        f"<Credentials><AccessKeyId>ASIA{unique}</AccessKeyId>"
        f"<SecretAccessKey>standin{unique}{os.urandom(8).hex()}</SecretAccessKey>"
        f"<SessionToken>token{unique}{os.urandom(16).hex()}</SessionToken>"
        f"<Expiration>{expiration}</Expiration></Credentials>"
    )


def _answer(form: dict[str, list[str]], seq: int) -> tuple[int, str]:
    action = form.get("Action", [""])[0]
    duration = int(form.get("DurationSeconds", ["3600"])[0])
    if action == "GetSessionToken":
        result = _credentials(seq, duration)
    elif action == "AssumeRole":
        arn = form.get("RoleArn", ["arn:aws:iam::123456789012:role/standin"])[0]
        result = _credentials(seq, duration) + _ROLE.format(arn=arn.replace(":iam:", ":sts:"))
    else:
        body = (
            f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>InvalidAction</Code>'
            f"<Message>{action or 'no action'} is not served here</Message></Error></ErrorResponse>"
        )
        return 400, body
    return 200, (
        f'<{action}Response xmlns="{_NS}"><{action}Result>{result}</{action}Result>'
        f"<ResponseMetadata><RequestId>{seq}</RequestId></ResponseMetadata></{action}Response>"
    )


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float, stats: _Stats
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if request_line.startswith("GET /stats"):
                status, text = 200, f"{stats.calls} {stats.max_in_flight}"
                stats.calls = stats.max_in_flight = 0
            else:
                stats.calls += 1
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                try:
                    await asyncio.sleep(latency)
                finally:
                    stats.in_flight -= 1
                status, text = _answer(parse_qs(body.decode()), stats.calls)
            data = text.encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}\r\n"
                f"Content-Type: text/xml\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main(port: int, latency: float) -> None:
    stats = _Stats()
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, latency, stats), "127.0.0.1", port, backlog=512
    )
    async with server:
        await server.serve_forever()


@dataclass(frozen=True)
class SlowSts:
    """A running stand-in: its URL and pid (for its CPU time in /proc)."""

    url: str
    pid: int

    def stats(self) -> tuple[int, int]:
        """(calls, most calls held at once) since the last look; both start again at 0."""
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/stats")
            calls, most = connection.getresponse().read().split()
        finally:
            connection.close()
        return int(calls), int(most)


@contextmanager
def slow_sts_server(*, latency: float = 0.03) -> Iterator[SlowSts]:
    """Start the stand-in on a free port of 127.0.0.1; stop it, by pid, when the `with` ends."""
    from support.moto_sts import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--port", str(port), "--latency", str(latency)],
        stdin=subprocess.DEVNULL,
    )
    server = SlowSts(f"http://127.0.0.1:{port}", process.pid)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                server.stats()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the STS stand-in did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.03)
    options = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(_main(options.port, options.latency))
