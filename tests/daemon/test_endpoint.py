"""The local credentials endpoint (credd/daemon/endpoint.py), in-process, over real loopback HTTP.

It is driven through the narrow `Lookup` it reads the daemon by, so no daemon is needed
here, except in the last tests, which wire it to a `Daemon` on fakes as `credd run` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from support.fakes import (
    FakeClock,
    FakeScheduler,
    InlineExecutor,
    MemorySts,
    MemoryWriter,
    make_policy,
    make_rig,
    settle,
)

from credd import protocol
from credd.credentials import Credentials
from credd.daemon.core import Daemon
from credd.daemon.endpoint import LOOPBACK, MAX_HEAD_BYTES, MAX_HEADERS, Endpoint, Held
from credd.errors import BadInputError, EndpointUnavailableError, Fault, NoCredentialsError
from credd.states import State

ROLE_ARN = "arn:aws:iam::123456789012:role/Admin"
SECRET = "CANARYendpointSecret000000000000000000xx"
SESSION = "CANARYendpointSessionToken"


def held_profiles(clock: FakeClock) -> dict[str, Held]:
    """A role and a session holding credentials, a role with none, one waiting for a code."""
    expiry = clock.now() + timedelta(hours=1)
    return {
        "admin": Held(
            Credentials("ASIAADMIN00000000001", SECRET, SESSION, expiry),
            State.FRESH,
            "eu-west-1",
            role_arn=ROLE_ARN,
        ),
        "session-x": Held(
            Credentials("ASIASESSION000000001", SECRET + "s", SESSION + "s", expiry),
            State.FRESH,
            "us-east-1",
        ),
        "ro": Held(
            None,
            State.EXPIRED,
            "us-east-1",
            role_arn=ROLE_ARN,
            note="waiting for session-x to have a valid session",
        ),
        "waiting": Held(None, State.AWAITING_CODE, "us-east-1"),
    }


class Rig:
    """An endpoint over a mutable table of profiles, on a fake clock."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.profiles = held_profiles(self.clock)
        self.port = 0
        self.endpoint = Endpoint(
            lookup=self.profiles.get, now=self.clock.now, port=lambda: self.port, **options
        )

    async def token(self, profile: str, ttl: int = 3600) -> str:
        """A token, minted the way `credctl exec` has one minted."""
        result = await self.endpoint.handle("endpoint-token", {"profile": profile, "ttl": ttl})
        token: str = result["token"]
        return token

    @property
    def address(self) -> tuple[str, int]:
        """Where the endpoint listens."""
        url = self.endpoint.url
        assert url is not None
        host, port = url.split("/")[2].split(":")
        return host, int(port)


async def exchange(
    address: tuple[str, int], raw: bytes
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send one raw request on a new connection; the status, headers and JSON body."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(
    reader: asyncio.StreamReader,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One response (status, lower-cased headers, JSON body) from a stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, json.loads(body) if body else {}


def get(token: str | None, path: str = "/v1/credentials", method: str = "GET") -> bytes:
    """A request as botocore sends it."""
    auth = f"Authorization: {token}\r\n" if token is not None else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n{auth}\r\n".encode()


async def test_a_token_reads_its_profile_as_the_sdk_expects() -> None:
    """200 with AccessKeyId, SecretAccessKey, Token, Expiration, and RoleArn for a role only."""
    rig = Rig()
    admin = await rig.token("admin")
    session = await rig.token("session-x")
    try:
        status, headers, body = await exchange(rig.address, get(admin))
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"
        assert body == {
            "AccessKeyId": "ASIAADMIN00000000001",
            "SecretAccessKey": SECRET,
            "Token": SESSION,
            "Expiration": "2026-11-26T09:00:00Z",
            "RoleArn": ROLE_ARN,
        }
        status, _, body = await exchange(rig.address, get(session))
        assert status == 200
        assert body["AccessKeyId"] == "ASIASESSION000000001"
        assert "RoleArn" not in body
    finally:
        await rig.endpoint.close()


async def test_a_token_reads_only_the_profile_it_was_minted_for() -> None:
    """A token names its profile: whatever the request says, A's token never gets B's keys."""
    rig = Rig()
    admin = await rig.token("admin")
    try:
        for path in ("/v1/credentials?profile=session-x", "/v1/credentials?x=session-x"):
            status, _, body = await exchange(rig.address, get(admin, path))
            assert status == 200 and body["AccessKeyId"] == "ASIAADMIN00000000001"
        status, _, _ = await exchange(rig.address, get(admin, "/v1/credentials/session-x"))
        assert status == 404
    finally:
        await rig.endpoint.close()


async def test_wrong_expired_and_revoked_tokens_get_403() -> None:
    """No token, a wrong one, two of them, an expired one and a revoked one: 403 with JSON."""
    rig = Rig()
    good = await rig.token("admin", ttl=600)
    revoked = await rig.token("admin")
    assert await rig.endpoint.handle("endpoint-revoke", {"token": revoked}) == {"revoked": True}
    assert await rig.endpoint.handle("endpoint-revoke", {"token": revoked}) == {"revoked": False}
    two = get(good).replace(b"\r\n\r\n", f"\r\nAuthorization: {good}\r\n\r\n".encode())
    try:
        for raw in (
            get(None),
            get("credd_" + "A" * 55),
            get(good[:-2]),
            get("Bearer " + good),
            get(revoked),
            two,
        ):
            status, _, body = await exchange(rig.address, raw)
            assert status == 403, raw
            assert "not valid" in body["Message"]
        rig.clock.advance(600)
        status, _, _ = await exchange(rig.address, get(good))
        assert status == 403
    finally:
        await rig.endpoint.close()


async def test_other_methods_get_405_and_other_paths_404() -> None:
    """Only GET /v1/credentials is served; HEAD gets its 405 with headers only."""
    rig = Rig()
    token = await rig.token("admin")
    try:
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            raw = get(token, method=method)
            if method in ("POST", "PUT", "PATCH"):
                raw = raw.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\n{}")
            status, headers, body = await exchange(rig.address, raw)
            assert status == 405 and headers["allow"] == "GET", method
            assert body == {"Message": "only GET is served here"}
        reader, writer = await asyncio.open_connection(*rig.address)
        writer.write(get(token, method="HEAD") + get(token))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405 ")
        status, _, body = await read_response(reader)  # the next answer follows at once
        assert status == 200 and body["AccessKeyId"]
        writer.close()
        status, _, _ = await exchange(rig.address, get(token, "/"))
        assert status == 404
    finally:
        await rig.endpoint.close()


async def test_no_valid_credentials_is_503_saying_why() -> None:
    """503 {"Message"} while nothing valid is held: expired, none yet, awaiting a code, gone."""
    rig = Rig()
    tokens = {name: await rig.token(name, ttl=7200) for name in ("admin", "ro", "waiting")}
    try:
        status, _, body = await exchange(rig.address, get(tokens["ro"]))
        assert status == 503
        assert body == {
            "Message": "credd holds no valid credentials for ro (expired): "
            "waiting for session-x to have a valid session"
        }
        status, _, body = await exchange(rig.address, get(tokens["waiting"]))
        assert status == 503 and "waiting for an MFA code: `credctl token CODE`" in body["Message"]
        rig.clock.advance(3600)
        status, _, body = await exchange(rig.address, get(tokens["admin"]))
        assert status == 503 and "no valid credentials for admin" in body["Message"]
        del rig.profiles["admin"]  # a reload took it out of the policy
        status, _, body = await exchange(rig.address, get(tokens["admin"]))
        assert status == 503 and body["Message"] == "admin is no longer in credd's policy"
    finally:
        await rig.endpoint.close()


async def test_keep_alive_serves_a_new_token_answer_each_time() -> None:
    """An SDK keeps its connection: each request on it is answered from memory as it is now."""
    rig = Rig()
    token = await rig.token("admin")
    reader, writer = await asyncio.open_connection(*rig.address)
    try:
        writer.write(get(token))
        status, _, first = await read_response(reader)
        renewed = Credentials("ASIAADMIN00000000002", SECRET, SESSION, rig.clock.now())
        rig.profiles["admin"] = Held(
            Credentials(
                renewed.access_key_id, SECRET, SESSION, rig.clock.now() + timedelta(hours=1)
            ),
            State.FRESH,
            "eu-west-1",
            role_arn=ROLE_ARN,
        )
        writer.write(get(token))
        status, _, second = await read_response(reader)
        assert status == 200
        assert (first["AccessKeyId"], second["AccessKeyId"]) == (
            "ASIAADMIN00000000001",
            "ASIAADMIN00000000002",
        )
    finally:
        writer.close()
        await rig.endpoint.close()


async def test_oversized_and_malformed_requests_are_refused_and_closed() -> None:
    """A head over the size limit or with too many headers gets 431, garbage 400; closed."""
    rig = Rig()
    token = await rig.token("admin")
    huge = get(token).replace(
        b"\r\n\r\n", b"\r\nX-Big: " + b"a" * (2 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    )
    many = get(token).replace(
        b"\r\n\r\n", b"".join(b"\r\nX-%d: 1" % i for i in range(MAX_HEADERS + 1)) + b"\r\n\r\n"
    )
    long_line = b"GET /" + b"a" * (2 * MAX_HEAD_BYTES) + b" HTTP/1.1\r\n\r\n"
    try:
        for raw, want in (
            (huge, 431),
            (many, 431),
            (long_line, 431),
            (b"\x00\x01 nonsense\r\n\r\n", 400),
        ):
            reader, writer = await asyncio.open_connection(*rig.address)
            writer.write(raw)
            status, headers, _ = await read_response(reader)
            assert status == want
            assert headers["connection"] == "close"
            assert await reader.read() == b"", "the connection is closed after it"
            writer.close()
        status, _, _ = await exchange(rig.address, get(token))
        assert status == 200
    finally:
        await rig.endpoint.close()


async def test_idle_and_slow_drip_clients_are_cut_off_and_others_served_meanwhile() -> None:
    """A connection has `request_seconds` for its whole head: silence and a byte at a time
    both end in a closed connection, and other clients are answered all along."""
    rig = Rig(request_seconds=0.5)
    token = await rig.token("admin")
    idle_reader, idle_writer = await asyncio.open_connection(*rig.address)
    drip_reader, drip_writer = await asyncio.open_connection(*rig.address)

    async def drip() -> None:
        for byte in get(token):
            drip_writer.write(bytes([byte]))
            await asyncio.sleep(0.05)  # 100+ bytes: far longer than 0.5 s in all

    dripping = asyncio.create_task(drip())
    try:
        for _ in range(3):
            status, _, _ = await exchange(rig.address, get(token))
            assert status == 200
        assert await asyncio.wait_for(idle_reader.read(), 10) == b""
        assert await asyncio.wait_for(drip_reader.read(), 10) == b""
    finally:
        dripping.cancel()
        idle_writer.close()
        drip_writer.close()
        await rig.endpoint.close()


async def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    """Hundreds of idle connections cannot lock a real client out."""
    rig = Rig(max_connections=16)
    token = await rig.token("admin")
    idle = [await asyncio.open_connection(*rig.address) for _ in range(200)]
    try:
        status, _, body = await exchange(rig.address, get(token))
        assert status == 200 and body["AccessKeyId"]
        closed = 0
        for reader, _ in idle:
            if await asyncio.wait_for(reader.read(), 10) == b"":
                closed += 1
            if closed >= 200 - 16:
                break
        assert closed >= 200 - 16
    finally:
        for _, writer in idle:
            writer.close()
        await rig.endpoint.close()


async def test_it_listens_on_127_0_0_1_only() -> None:
    """The address is not a setting: bound to 127.0.0.1 exactly, not a wildcard, so even
    127.0.0.2 (loopback too) finds nothing there."""
    rig = Rig()
    url = await rig.endpoint.start()
    host, port = rig.address
    try:
        assert url == f"http://127.0.0.1:{port}/v1/credentials"
        assert host == LOOPBACK == "127.0.0.1"
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.2", port)
        assert await rig.endpoint.start() == url, "started once"
    finally:
        await rig.endpoint.close()


async def test_a_port_in_use_is_a_clear_error_and_a_later_try_may_succeed() -> None:
    """endpoint_port taken: ENDPOINT_UNAVAILABLE naming the port and the fix; nothing bound."""
    rig = Rig()
    taken = socket.socket()
    taken.bind((LOOPBACK, 0))
    taken.listen()
    rig.port = taken.getsockname()[1]
    try:
        with pytest.raises(EndpointUnavailableError) as caught:
            await rig.token("admin")
        assert caught.value.fault == Fault.ENDPOINT_UNAVAILABLE
        assert f"cannot listen on 127.0.0.1:{rig.port}" in caught.value.message
        assert "endpoint_port" in caught.value.message
        assert rig.endpoint.url is None and len(rig.endpoint.tokens) == 0
        taken.close()
        token = await rig.token("admin")
        assert rig.address[1] == rig.port
        status, _, _ = await exchange(rig.address, get(token))
        assert status == 200
    finally:
        taken.close()
        await rig.endpoint.close()


async def test_the_control_socket_ops_check_what_they_are_given() -> None:
    """Unknown profile, bad ttl, env-credentials with nothing held: the usual faults."""
    rig = Rig()
    handle = rig.endpoint.handle
    with pytest.raises(BadInputError) as caught:
        await handle("endpoint-token", {"profile": "nope"})
    assert caught.value.fault == Fault.UNKNOWN_PROFILE
    for ttl in (0, -1, True, "12h", protocol.TOKEN_TTL_MAX_SECONDS + 1):
        with pytest.raises(BadInputError) as caught:
            await handle("endpoint-token", {"profile": "admin", "ttl": ttl})
        assert caught.value.fault == Fault.BAD_REQUEST
    with pytest.raises(BadInputError):
        await handle("endpoint-token", {"profile": None})
    with pytest.raises(NoCredentialsError) as no_creds:
        await handle("env-credentials", {"profile": "waiting"})
    assert "waiting for an MFA code" in no_creds.value.message
    env = await handle("env-credentials", {"profile": "admin"})
    assert env == {
        "profile": "admin",
        "region": "eu-west-1",
        "credentials": {
            "AccessKeyId": "ASIAADMIN00000000001",
            "SecretAccessKey": SECRET,
            "SessionToken": SESSION,
            "Expiration": "2026-11-26T09:00:00Z",
        },
    }
    minted = await handle("endpoint-token", {"profile": "ro"})
    assert minted["valid"] is False and minted["state"] == "expired"
    assert minted["expires_at"] == "2026-11-26T20:00:00Z", "12h by default"
    assert await handle("endpoint-revoke", {"token": "nonsense"}) == {"revoked": False}
    await rig.endpoint.close()


async def test_no_token_or_secret_is_ever_logged(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, through every kind of answer, the log holds no token, secret or session."""
    caplog.set_level(logging.DEBUG)
    rig = Rig()
    token = await rig.token("admin")
    try:
        for raw in (get(token), get(token + "x"), get(token, method="POST"), get(token, "/x")):
            await exchange(rig.address, raw)
        await exchange(
            rig.address, get(token).replace(b"\r\n\r\n", b"\r\nX: " + token.encode() * 200)
        )
        await rig.endpoint.handle("endpoint-revoke", {"token": token})
    finally:
        await rig.endpoint.close()
    text = caplog.text
    assert "endpoint: 200 for admin" in text
    for canary in (token, token[18:], SECRET, SESSION):
        assert canary not in text


CHAIN = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
  admin:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/Admin
"""


async def test_wired_to_the_daemon_it_serves_what_the_daemon_holds() -> None:
    """`credd run`'s wiring: the ops go through the control socket's handler, status shows the
    URL once listening, and the endpoint serves the daemon's current credentials."""
    clock = FakeClock()
    policy = make_policy(CHAIN)
    held = lambda name: daemon.held(name)  # noqa: E731, PLW0108 (`daemon` is made below)
    endpoint = Endpoint(lookup=held, now=clock.now, port=lambda: 0)
    daemon = Daemon(
        policy=policy,
        load_policy=lambda: policy,
        sts=MemorySts(clock),
        clock=clock,
        scheduler=FakeScheduler(clock),
        executor=InlineExecutor(),
        writer_for=lambda _path: MemoryWriter(),
        endpoint=endpoint,
        write_delay=0,
    )
    await daemon.start()
    await settle()
    assert daemon.status()["daemon"]["endpoint"] is None
    reply = await daemon.handle({"op": "endpoint-token", "profile": "admin", "ttl": 60})
    assert reply["ok"], reply
    token = reply["result"]["token"]
    assert reply["result"]["region"] == "us-east-1"
    assert daemon.status()["daemon"]["endpoint"] == reply["result"]["url"]
    assert token not in json.dumps(daemon.status())
    host, port = reply["result"]["url"].split("/")[2].split(":")
    try:
        status, _, body = await exchange((host, int(port)), get(token))
        assert status == 503 and "(pending)" in body["Message"]
        await daemon.handle({"op": "token", "code": "123456", "profile": "session-x"})
        await settle()
        status, _, body = await exchange((host, int(port)), get(token))
        assert status == 200
        entry = daemon.entry("admin")
        assert entry is not None and entry.credentials is not None
        assert body["AccessKeyId"] == entry.credentials.access_key_id
        assert body["RoleArn"] == "arn:aws:iam::123456789012:role/Admin"
        unknown = await daemon.handle({"op": "endpoint-token", "profile": "nope"})
        assert unknown["error"]["name"] == "UNKNOWN_PROFILE"
        revoked = await daemon.handle({"op": "endpoint-revoke", "token": token})
        assert revoked == {"ok": True, "result": {"revoked": True}}
    finally:
        await endpoint.close()
        await daemon.stop()


async def test_a_daemon_without_an_endpoint_says_so() -> None:
    """No endpoint wired: `daemon.endpoint` is null and its ops are unknown there."""
    rig = make_rig(CHAIN)
    await rig.daemon.start()
    assert rig.daemon.status()["daemon"]["endpoint"] is None
    reply = await rig.daemon.handle({"op": "endpoint-token", "profile": "admin"})
    assert reply["error"]["name"] == "UNKNOWN_OP"


def test_an_idle_daemon_does_not_load_h11() -> None:
    """h11 is imported with the first connection, not with the daemon (bench/ #3's idle RSS)."""
    probe = "import sys, credd.daemon.run; print('h11' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_reprs_keep_the_secrets() -> None:
    """A reply, what is held for a profile, and the endpoint itself show no secret or token."""
    rig = Rig()
    reply = rig.endpoint.respond(b"GET", b"/v1/credentials", [])
    token, _ = rig.endpoint.tokens.mint("admin", 60)
    served = rig.endpoint.respond(b"GET", b"/v1/credentials", [token.encode()])
    assert served.status == 200 and served.body["SecretAccessKey"] == SECRET
    for value in (reply, served, rig.profiles["admin"], rig.endpoint, rig.endpoint.tokens):
        for canary in (SECRET, SESSION, token, token[18:]):
            assert canary not in repr(value)
