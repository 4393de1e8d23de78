"""A child process on a real terminal (a pty): wait for text, type lines, read the end."""

from __future__ import annotations

import os
import pty
import select
import signal
import time


class Terminal:
    """A child process on a pty: wait for text, type lines."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            # As a shell starts a job in the foreground: a runner started in the background
            # (`make test &`) has SIGINT ignored, and Python keeps an ignored SIGINT ignored.
            for number in (signal.SIGINT, signal.SIGQUIT):
                signal.signal(number, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        self.transcript = bytearray()  # not yet matched by an expect
        self.shown = b""  # matched already

    def expect(self, text: str, timeout: float = 20.0) -> None:
        """Read until `text` has appeared since the last expect."""
        wanted = text.encode()
        deadline = time.monotonic() + timeout
        while wanted not in self.transcript:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {text!r} in:\n{self.text()}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {text!r} in:\n{self.text()}")
                self.transcript += chunk
        # Later expects look only at what comes after this match.
        end = self.transcript.index(wanted) + len(wanted)
        self.shown += bytes(self.transcript[:end])
        del self.transcript[:end]

    def send(self, line: str) -> None:
        """Type a line and Enter."""
        os.write(self.fd, line.encode() + b"\r")

    def finish(self, timeout: float = 20.0) -> int:
        """Read to EOF and return the exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.transcript += chunk
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        """End the child (a failed test must not leave it waiting for input)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def text(self) -> str:
        """Everything shown so far."""
        return (self.shown + bytes(self.transcript)).decode(errors="replace")
