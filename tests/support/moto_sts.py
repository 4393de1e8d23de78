"""moto's server as a local STS on 127.0.0.1, in a subprocess, for as long as a `with` lasts.

moto answers GetSessionToken and AssumeRole with well-formed credentials but
accepts any key, serial and code: tests of refusals use `fake_sts.FakeSts`.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*program, "-H", "127.0.0.1", "-p", str(port)]


def answers(port: int) -> bool:
    """moto's server answers on `port` (127.0.0.1)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/moto-api/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


@contextmanager
def moto_sts_server(*, startup_timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Start moto's server on a free port; yield `http://127.0.0.1:PORT`; stop it by pid."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MOTO_PORT"}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            _command(port),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while not answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    tail = output.read()[-2000:].decode("utf-8", "replace")
                    raise RuntimeError(f"moto server did not start on port {port}:\n{tail}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
