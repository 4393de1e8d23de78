"""The local credentials endpoint: the AWS container-credentials protocol on 127.0.0.1.

SDKs read the credentials file once per process; the container-credentials
endpoint is what every SDK refreshes from by itself
(`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`), so a long
run or a container keeps getting the credentials credd renews (SPEC.md "Credentials for
running processes"). `credctl exec` asks for a token over the control socket and hands
both variables to its command.

What it answers, to `GET /v1/credentials` with `Authorization: <token>`:

- 200 `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` (+ `RoleArn` for a
  role), from the daemon's memory;
- 403 for a token that is unknown, expired or revoked (a token names its profile: there
  is no way to ask it for another);
- 405 for any other method, 404 for any other path;
- 503 `{"Message": ...}` while the profile has no valid credentials.

It listens on 127.0.0.1 only: the address is a constant here, and the policy can name
the port (`endpoint_port`) and nothing else. Any local user can connect to a loopback
port, so the token is the whole of the access control. A connection gets
`REQUEST_SECONDS` to send a whole request head of at most `MAX_HEAD_BYTES` in at most
`MAX_HEADERS` headers, and at most `MAX_CONNECTIONS` are open at once (the one that
waited longest for its request makes room for a new one), so a misbehaving client never
stalls the daemon's event loop or locks others out.

The only home of h11 in credd, imported when the first connection comes: a daemon that
never serves one does not carry it (its idle memory is a performance target, bench/ #3).
The daemon's state comes in through one narrow callable (`Lookup`: a profile's name to
what is held for it), so this module is tested without the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from credd import protocol
from credd.credentials import Credentials, format_utc
from credd.daemon.connections import Connections
from credd.daemon.tokens import TokenStore
from credd.errors import BadInputError, EndpointUnavailableError, Fault, NoCredentialsError
from credd.states import State

if TYPE_CHECKING:
    import h11

log = logging.getLogger(__name__)

# Not a setting: SDKs accept plain http only on loopback, and nothing else may connect.
LOOPBACK = "127.0.0.1"
PATH = "/v1/credentials"
# A request head (request line and headers) is a few hundred bytes from any SDK.
MAX_HEAD_BYTES = 8 * 1024
MAX_HEADERS = 32
# Time to send one whole request head, from the moment the connection waits for it: an
# idle client and one that drips a byte at a time are both cut off at the end of it.
REQUEST_SECONDS = 10.0
# A reply is under 2 KiB; a client that cannot take it in this long has stopped reading.
SEND_SECONDS = 5.0
MAX_REQUESTS_PER_CONNECTION = 100
MAX_CONNECTIONS = 128
MIN_CONNECTIONS = 8
READ_CHUNK = 4096


@dataclass(frozen=True)
class Held:
    """What the daemon holds for one profile, as the endpoint serves it."""

    credentials: Credentials | None
    state: State
    region: str
    role_arn: str | None = None
    note: str | None = None  # the profile's last error, if any (never a secret)


# A profile's name to what is held for it now; None when no such profile is in the policy.
Lookup = Callable[[str], Held | None]


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: its status and JSON body."""

    status: int
    body: Mapping[str, Any] = field(repr=False)  # a 200's holds the secret and the token

    def headers(self, *, close: bool) -> list[tuple[str, str]]:
        """Its headers but Content-Length; `close`: the connection ends after it."""
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if self.status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers.append(("Allow", "GET"))
        if close:
            headers.append(("Connection", "close"))
        return headers


class Endpoint:
    """The endpoint: its tokens, its answers, and the HTTP server that starts on first use.

    `port()` is read when the server starts (the policy's `endpoint_port`, 0: any free
    port); `now()` is the wall clock (aware UTC).
    """

    def __init__(
        self,
        *,
        lookup: Lookup,
        now: Callable[[], datetime],
        port: Callable[[], int],
        tokens: TokenStore | None = None,
        request_seconds: float = REQUEST_SECONDS,
        max_connections: int | None = None,
    ) -> None:
        self._lookup = lookup
        self._now = now
        self._port = port
        self.tokens = tokens or TokenStore(clock=now)
        self._request_seconds = request_seconds
        self._server: asyncio.Server | None = None
        self._url: str | None = None
        self._starting = asyncio.Lock()
        self._connections = Connections(max_connections or connection_limit(), "endpoint")

    @property
    def url(self) -> str | None:
        """`http://127.0.0.1:PORT/v1/credentials` once listening, else None."""
        return self._url

    # ------------------------------------------------------------------ control socket ops

    async def handle(self, op: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one of `protocol.ENDPOINT_OPS`; raises CreddError for a failure reply."""
        if op == "endpoint-token":
            return await self._mint(request)
        if op == "endpoint-revoke":
            token = protocol.optional_str(request, "token")
            revoked = token is not None and self.tokens.revoke(token)
            log.debug("endpoint token revoked: %s", "yes" if revoked else "was not live")
            return {"revoked": revoked}
        if op == "env-credentials":
            return self._env_credentials(self._profile(request))
        raise BadInputError(f"op {op!r} cannot be used here", fault=Fault.UNKNOWN_OP)

    async def _mint(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name, held = self._profile(request)
        ttl = request.get("ttl", protocol.TOKEN_TTL_DEFAULT_SECONDS)
        most = protocol.TOKEN_TTL_MAX_SECONDS
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= most:
            raise BadInputError(f'"ttl" must be a number of seconds from 1 to {most}')
        url = await self.start()
        token, grant = self.tokens.mint(name, ttl)
        log.info("endpoint token issued for %s, until %s", name, format_utc(grant.expires_at))
        return {
            "profile": name,
            "url": url,
            "token": token,
            "expires_at": format_utc(grant.expires_at),
            "region": held.region,
            "state": held.state.value,
            "valid": _valid(held.credentials, self._now()),
        }

    def _env_credentials(self, profile: tuple[str, Held]) -> dict[str, Any]:
        name, held = profile
        creds = held.credentials
        if creds is None or not _valid(creds, self._now()):
            raise NoCredentialsError(_no_credentials(name, held))
        assert creds.expires_at is not None  # _valid
        return {
            "profile": name,
            "region": held.region,
            "credentials": {
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token or "",
                "Expiration": format_utc(creds.expires_at),
            },
        }

    def _profile(self, request: Mapping[str, Any]) -> tuple[str, Held]:
        name = protocol.optional_str(request, "profile")
        if not name:
            raise BadInputError('"profile" must name a profile')
        held = self._lookup(name)
        if held is None:
            raise BadInputError(f"no profile {name!r} in the policy", fault=Fault.UNKNOWN_PROFILE)
        return name, held

    # ------------------------------------------------------------------ answers

    def respond(self, method: bytes, target: bytes, authorization: list[bytes]) -> Reply:
        """The answer to one request, given its method, target and Authorization values."""
        if method != b"GET":
            return Reply(HTTPStatus.METHOD_NOT_ALLOWED, {"Message": "only GET is served here"})
        if target.split(b"?", 1)[0] != PATH.encode():
            return Reply(HTTPStatus.NOT_FOUND, {"Message": f"credentials are served at {PATH}"})
        grant = None
        if len(authorization) == 1:
            grant = self.tokens.check(authorization[0].decode("latin-1"))
        if grant is None:
            log.debug("endpoint: 403, no valid token")
            return Reply(
                HTTPStatus.FORBIDDEN,
                {"Message": "the authorization token is not valid (unknown, expired or revoked)"},
            )
        name = grant.profile
        held = self._lookup(name)
        if held is None:
            log.debug("endpoint: 503 for %s, no longer in the policy", name)
            return Reply(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"Message": f"{name} is no longer in credd's policy"},
            )
        creds = held.credentials
        if creds is None or creds.expires_at is None or not _valid(creds, self._now()):
            log.debug("endpoint: 503 for %s (%s)", name, held.state.value)
            return Reply(HTTPStatus.SERVICE_UNAVAILABLE, {"Message": _no_credentials(name, held)})
        body = {
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "Token": creds.session_token or "",
            "Expiration": format_utc(creds.expires_at),
        }
        if held.role_arn is not None:
            body["RoleArn"] = held.role_arn
        log.debug("endpoint: 200 for %s", name)
        return Reply(HTTPStatus.OK, body)

    # ------------------------------------------------------------------ the HTTP server

    async def start(self) -> str:
        """Listen on 127.0.0.1 (once); return the URL. Raises EndpointUnavailableError."""
        async with self._starting:
            if self._url is not None:
                return self._url
            port = self._port()
            try:
                server = await asyncio.start_server(
                    self._accept, host=LOOPBACK, port=port, limit=MAX_HEAD_BYTES
                )
            except OSError as error:
                raise EndpointUnavailableError(
                    f"the local endpoint cannot listen on {LOOPBACK}:{port}: "
                    f"{error.strerror or error}; set endpoint_port in the policy to a free "
                    "port, or to 0 for any"
                ) from None
            self._server = server
            bound = server.sockets[0].getsockname()
            self._url = f"http://{bound[0]}:{bound[1]}{PATH}"
            log.info("local credentials endpoint listening on %s", self._url)
            return self._url

    async def close(self) -> None:
        """Stop listening and end every open connection. Tokens die with the daemon."""
        if self._server is not None:
            self._server.close()
        await self._connections.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        await self._connections.serve(
            writer, lambda: self._serve(reader, writer), quiet=(h11.LocalProtocolError,)
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            self._connections.idle()
            try:
                async with asyncio.timeout(self._request_seconds):
                    request = await _read_head(conn, reader)
            except TimeoutError:
                log.debug("endpoint: a connection sent no whole request in time; closed")
                return
            except h11.RemoteProtocolError as error:
                # h11's message may quote the request: only the status is kept.
                status = HTTPStatus(error.error_status_hint)
                log.debug("endpoint: %d, malformed request", status)
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(writer, conn, Reply(status, {"Message": status.phrase}), close=True)
                return
            finally:
                self._connections.busy()
            if request is None:
                return
            if len(request.headers) > MAX_HEADERS:
                status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                reply = Reply(status, {"Message": f"more than {MAX_HEADERS} headers"})
                await _send(writer, conn, reply, close=True)
                return
            # A body is never read (no request here has one): answer, then close.
            has_body = _has_body(request)
            if not has_body:
                conn.next_event()  # EndOfMessage, with no more data needed
            authorization = [value for name, value in request.headers if name == b"authorization"]
            reply = self.respond(request.method, request.target, authorization)
            await _send(writer, conn, reply, close=has_body, with_body=request.method != b"HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()


async def _read_head(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The next request's head; None when the client closed the connection first."""
    import h11

    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_CHUNK))
        elif isinstance(event, h11.Request):
            return event
        else:  # ConnectionClosed (a client may end a kept-alive connection at any time)
            return None


def _has_body(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


async def _send(
    writer: asyncio.StreamWriter,
    conn: h11.Connection,
    reply: Reply,
    *,
    close: bool,
    with_body: bool = True,
) -> None:
    """Write one reply; `with_body` False for HEAD, whose answer has headers only."""
    import h11

    data = json.dumps(reply.body).encode()
    headers = [*reply.headers(close=close), ("Content-Length", str(len(data)))]
    status = HTTPStatus(reply.status)
    events: list[h11.Event] = [
        h11.Response(status_code=status, headers=headers, reason=status.phrase)
    ]
    if with_body:
        events.append(h11.Data(data=data))
    events.append(h11.EndOfMessage())
    writer.write(b"".join(conn.send(event) or b"" for event in events))
    await asyncio.wait_for(writer.drain(), SEND_SECONDS)


def connection_limit(cap: int = MAX_CONNECTIONS) -> int:
    """How many endpoint connections to allow: a quarter of RLIMIT_NOFILE, at most `cap`.

    The control socket's connections and the daemon's own files share the rest.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(MIN_CONNECTIONS, min(cap, soft // 4))


def _valid(creds: Credentials | None, now: datetime) -> bool:
    return creds is not None and creds.expires_at is not None and creds.is_valid_at(now)


def _no_credentials(name: str, held: Held) -> str:
    message = f"credd holds no valid credentials for {name} ({held.state.value})"
    if held.state is State.AWAITING_CODE:
        message += "; it is waiting for an MFA code: `credctl token CODE`"
    elif held.note:
        message += f": {held.note}"
    return message
