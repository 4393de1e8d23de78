"""credctl's side of the control socket. Standard library only.

It uses `_socket`, the C module under `socket`, because `socket` itself imports
`enum` and `selectors`: +12 ms against +0.3 ms on credctl's ~25 ms start
(bench/RESULTS.md #2). Only connect, send, receive and close are needed here.

It trusts only a daemon of its own uid (SPEC.md "Files and locations"): before it sends
a byte it checks the socket's directory (not a symlink, its own, not writable by group
or others) and the uid of the process listening, and refuses with UntrustedDaemonError
(exit 3). Under the `$TMPDIR`/`/tmp` fallback another user can make the directory first.
"""

from __future__ import annotations

import _socket
import os

from credd import protocol
from credd.errors import (
    FAULT_NAMES,
    CreddError,
    DaemonUnreachableError,
    Fault,
    RemoteError,
    UntrustedDaemonError,
)
from credd.socketcheck import directory_problem, peer_uid

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~50 ms start
# (bench/RESULTS.md #2). mypy treats any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A token request waits for STS and a durable write; STS's own timeouts bound it well below this.
REQUEST_TIMEOUT_SECONDS = 60.0


class Client:
    """Talks to a running credd over its Unix socket, one connection per request."""

    def __init__(self, path: str, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.path = path
        self._timeout = timeout

    def _connect(self) -> _socket.socket:
        """A connection to a daemon of our own uid, checked before anything is sent on it."""
        self._check_directory()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise self._not_running() from None
        except OSError as error:
            sock.close()
            raise DaemonUnreachableError(
                f"cannot reach credd at {self.path}: {error.strerror or error}"
            ) from None
        try:
            self._check_peer(sock)
        except UntrustedDaemonError:
            sock.close()
            raise
        return sock

    def _not_running(self) -> DaemonUnreachableError:
        return DaemonUnreachableError(
            f"credd is not running (no daemon answers at {self.path}); start it with "
            "`systemctl --user start credd`, or `credd run` in a terminal"
        )

    def _check_directory(self) -> None:
        directory = os.path.dirname(self.path) or "."
        try:
            info = os.lstat(directory)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_running() from None
        except OSError as error:
            raise DaemonUnreachableError(
                f"cannot reach credd at {self.path}: {directory}: {error.strerror or error}"
            ) from None
        problem = directory_problem(directory, info, os.getuid())
        if problem is not None:
            raise UntrustedDaemonError(f"not sending anything to {self.path}: {problem}")

    def _check_peer(self, sock: _socket.socket) -> None:
        try:
            uid = peer_uid(sock)
        except OSError as error:
            raise UntrustedDaemonError(
                f"not sending anything to {self.path}: cannot tell who listens there"
                f" ({error.strerror or error}); restart credd, or use a socket of your own"
                " (--socket or CREDD_SOCKET)"
            ) from None
        if uid != os.getuid():
            raise UntrustedDaemonError(
                f"not sending anything to {self.path}: the process listening there runs as"
                f" uid {uid}, not as you (uid {os.getuid()}), so it is not your credd; stop"
                " it, or start credd on a socket of your own (--socket or CREDD_SOCKET)"
            )

    def request(self, op: str, **fields: Any) -> Any:
        """Send one request and return its result, or raise RemoteError."""
        sock = self._connect()
        try:
            sock.sendall(protocol.encode({"op": op, **fields}))
            reply = _read_reply(sock)
        except (BrokenPipeError, ConnectionResetError):
            # The daemon hung up first: it was stopping, or shedding connections.
            raise CreddError("credd closed the connection without an answer") from None
        finally:
            sock.close()
        return _result(reply)

    def subscribe(self) -> Subscription:
        """Open the event stream `credctl prompt` listens to."""
        sock = self._connect()
        sock.sendall(protocol.encode({"op": "subscribe"}))
        subscription = Subscription(sock)
        while not subscription.ready and not subscription.closed:
            subscription.receive()
        sock.settimeout(None)  # events may be hours apart; select() says when one is there
        return subscription


class Subscription:
    """The daemon's events, read without blocking once select() says the socket is readable."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.ready = False  # the daemon acknowledged the subscription
        self.closed = False

    def fileno(self) -> int:
        """For select()."""
        return self._sock.fileno()

    @property
    def has_events(self) -> bool:
        """Events already received and not yet handed out (no need to wait on select())."""
        return bool(self._events)

    def receive(self) -> None:
        """Receive what has arrived and keep the complete events in it."""
        chunk = self._sock.recv(65536)
        if not chunk:
            self.closed = True
            self._sock.close()
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = protocol.decode(line)
            if not self.ready:
                _result(message)
                self.ready = True
            else:
                self._events.append(message)

    def read(self) -> list[dict[str, Any]]:
        """Every complete event: those received with the acknowledgement, then what arrived."""
        if not self._events and not self.closed:
            self.receive()
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Leave."""
        self._sock.close()


def _read_reply(sock: _socket.socket) -> dict[str, Any]:
    """The one reply line (a request's connection carries nothing else)."""
    received = b""
    while b"\n" not in received:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise CreddError("credd did not answer in time") from None
        if not chunk:
            raise CreddError("credd closed the connection without an answer")
        received += chunk
    try:
        reply = protocol.decode(received.split(b"\n", 1)[0])
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise CreddError("credd sent a malformed answer")
    return reply


def _result(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    code = error.get("code")
    fault = code if isinstance(code, int) and code in FAULT_NAMES else Fault.INTERNAL
    raise RemoteError(fault, str(error.get("message", "credd reported an error")))
