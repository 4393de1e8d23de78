"""Reprs keep secrets (CONVENTIONS 15): every value that can hold a secret or file bytes.

Each class is built holding canaries, the way credd builds it where that is cheap, and
its repr (and str) must show none of them: a repr ends up in tracebacks, `--debug`
output and log lines that format an object with %r. credd/policy/ and
credd/daemon/core.py are left to their own tests (being rewritten as this was written).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import io
import pkgutil
import socket
from datetime import UTC, datetime
from pathlib import Path

import credd
from credd.adapters.keyring import Keyring, StoredKey
from credd.commands.login import _Login
from credd.credentials import Credentials
from credd.ctl.client import Client, Subscription
from credd.daemon.codesources import _Capture, _CommandFailed, _Finished
from credd.daemon.writebatch import WriteBatcher
from credd.files import credfile
from credd.files.csvimport import KeyRow, read_rows
from credd.files.lookup import AwsFiles
from credd.files.writer import CredentialsWriter, _Replaced, _Seen, _Snapshot

KEY_ID = "AKIACANARYREPRKEY789"
SECRET = "CanaryReprSecretDoNotShowCanaryReprSecret"
TOKEN = "CanaryReprSessionTokenDoNotShowFQoGZXIvYXdzEJr"
CODE = "739164"
CANARIES = (KEY_ID, SECRET, TOKEN, CODE)

FILE_TEXT = (
    "# comment\n"
    f"[alice]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    f"aws_session_token = {TOKEN}\nregion = eu-west-1\n"
)
FILE_BYTES = FILE_TEXT.encode()


def assert_masked(value: object) -> None:
    """No canary in the repr or the str of `value`."""
    for text in (repr(value), str(value)):
        for canary in CANARIES:
            assert canary not in text, f"{type(value).__qualname__} shows {canary[:6]}...: {text}"


def test_credentials() -> None:
    """Session credentials: key id masked, secret and token left out."""
    creds = Credentials(KEY_ID, SECRET, TOKEN, datetime(2026, 11, 26, tzinfo=UTC))
    assert_masked(creds)
    assert "****Y789" in repr(creds)


def test_the_credentials_file_scan_and_its_lines() -> None:
    """The parsed file (values) and each line (its text) of a file holding secrets."""
    scan = credfile._scan(FILE_TEXT, "<t>")
    assert scan.values["alice"]["aws_secret_access_key"] == SECRET
    assert_masked(scan)
    for line in scan.lines:
        assert_masked(line)


def test_the_writers_snapshot_of_the_file(tmp_path: Path) -> None:
    """What the writer read: its identity and its bytes."""
    target = tmp_path / "credentials"
    target.write_bytes(FILE_BYTES)
    snapshot = CredentialsWriter(target)._snapshot(target)
    assert snapshot is not None
    assert snapshot.data == FILE_BYTES
    assert_masked(snapshot)
    assert_masked(_Snapshot(1, 2, 3, 4, "0" * 64, FILE_BYTES))


def test_a_replaced_file_and_how_it_was_last_seen() -> None:
    """A file credd replaced and keeps watching, and the look the writer takes at it."""
    replaced = _Replaced(7, FILE_BYTES, (len(FILE_BYTES), 1), 0.0)
    assert_masked(replaced)
    assert_masked(_Seen(replaced, FILE_BYTES, (len(FILE_BYTES), 2)))


def test_a_row_of_the_consoles_csv(tmp_path: Path) -> None:
    """A row of `credctl import`: the key and its secret."""
    csv = tmp_path / "alice_accessKeys.csv"
    csv.write_text(f"Access key ID,Secret access key\n{KEY_ID},{SECRET}\n")
    (row,) = read_rows(csv)
    assert row.secret_access_key == SECRET
    assert_masked(row)
    assert_masked(KeyRow("alice", KEY_ID, SECRET, 2))


def test_the_aws_files_as_looked_up(tmp_path: Path) -> None:
    """What credd keeps of the AWS files: key names and non-secret values only."""
    credentials = tmp_path / "credentials"
    credentials.write_text(FILE_TEXT)
    config = tmp_path / "config"
    config.write_text(f"[profile alice]\nregion = eu-west-1\naws_secret_access_key = {SECRET}\n")
    aws = AwsFiles.load(credentials, {"AWS_CONFIG_FILE": str(config), "HOME": str(tmp_path)})
    assert aws.region_for("alice") == "eu-west-1"
    assert_masked(aws)
    for section in [*aws.credentials.values(), *aws.config.values()]:
        assert_masked(section)


def test_credctls_client_and_event_stream() -> None:
    """credctl's client, and an event stream holding received bytes not yet a whole line."""
    assert_masked(Client("/tmp/x/credd.sock"))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        theirs.sendall(b'{"ok": true, "result": {}}\n{"event": "x", "note": "' + TOKEN.encode())
        subscription = Subscription(ours)
        subscription.receive()
        assert subscription.ready
        assert_masked(subscription)


def test_code_command_results() -> None:
    """A code command's output (a code, or whatever it printed), as captured and as kept."""
    assert_masked(_Finished(0, f"{CODE}\n{SECRET}".encode()))
    assert_masked(_CommandFailed("exited with status 1"))

    async def capture() -> None:
        pipe = _Capture(4096)
        pipe.data_received(f"{CODE}\n".encode())
        assert bytes(pipe.data) == f"{CODE}\n".encode()
        assert_masked(pipe)

    asyncio.run(capture())


def test_pending_credentials_writes() -> None:
    """The batcher holds the keys of sections waiting to be written."""
    seen: list[str] = []

    async def run() -> None:
        async def flush(updates: dict[str, dict[str, str | None]]) -> None:
            assert updates["alice"]["aws_secret_access_key"] == SECRET
            seen.append(repr(batcher))

        batcher = WriteBatcher(flush, delay=0)
        keys = Credentials(KEY_ID, SECRET, TOKEN).as_file_keys()
        await batcher.write("alice", keys, urgent=True)
        seen.append(repr(batcher))

    asyncio.run(run())
    assert len(seen) == 2
    for text in seen:
        assert not any(canary in text for canary in CANARIES), text


def test_a_credd_login_run() -> None:
    """`credd login` holds its arguments, the code given with --token-code among them."""
    args = argparse.Namespace(
        profile=None,
        update_profile=None,
        serial_number=None,
        duration_seconds=None,
        token_code=CODE,
    )
    login = _Login(
        args, env={}, stdin=io.StringIO(), out=io.StringIO(), err=io.StringIO(), keyring=Keyring()
    )
    assert_masked(login)


# Field names that hold a secret wherever they appear, and `bytes` fields (file contents,
# a command's output): each must be left out of its class's repr.
SECRET_FIELDS = {
    "secret_access_key",
    "session_token",
    "token",
    "code",
    "external_id",
    "data",
    "body",
    "output",
}


def _dataclasses() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(credd.__path__, "credd."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and dataclasses.is_dataclass(value)
            and value.__module__ == module.__name__
        )
    return found


def test_every_dataclass_leaves_its_secret_fields_out_of_its_repr() -> None:
    """A new dataclass with a secret or a bytes field fails here until it masks it: the
    field has repr=False, or the class writes its own repr (the checks above show it)."""
    classes = _dataclasses()
    assert _Snapshot in classes and Credentials in classes
    shown = [
        f"{cls.__module__}.{cls.__qualname__}.{field.name}"
        for cls in classes
        if cls.__dataclass_params__.repr  # type: ignore[attr-defined]
        for field in dataclasses.fields(cls)
        if field.repr and (field.name in SECRET_FIELDS or "bytes" in str(field.type))
    ]
    assert shown == []


def test_a_daemon_entry_and_its_profile() -> None:
    """The daemon's live state of a profile holds its credentials and its role's ExternalId."""
    from support.fakes import make_policy

    from credd.daemon.core import Entry

    policy = make_policy(
        "version: 1\nprofiles:\n  ops:\n    source_profile: default\n"
        f"    role_arn: arn:aws:iam::123456789012:role/Ops\n    external_id: {SECRET}\n"
    )
    entry = Entry(policy.profiles[0], credentials=Credentials(KEY_ID, SECRET, TOKEN))
    assert_masked(entry)


def test_a_key_as_the_keyring_holds_it() -> None:
    """A long-term key from the keyring: the key id masked, the secret never shown."""
    assert_masked(StoredKey(KEY_ID, SECRET))


def test_rotation_values() -> None:
    """A new key from IAM, IAM's listing, the journal's open rotation, the rotation's
    result and the daemon's key state: key ids masked, secrets never shown."""
    from credd.adapters.iam import AccessKeyInfo, NewKey
    from credd.daemon.rotations import KeyState
    from credd.rotation.journal import KeyRecord, OpenRotation
    from credd.rotation.rotate import Rotated

    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert_masked(NewKey(KEY_ID, SECRET, now))
    assert_masked(AccessKeyInfo(KEY_ID, "Active", now))
    assert_masked(
        OpenRotation("alice", "alice", "file", KEY_ID, (KEY_ID,), "2026", "created", KEY_ID)
    )
    rotated = Rotated("alice", KEY_ID, KEY_ID, "keyring")
    assert KEY_ID not in rotated.describe() and "****Y789" in rotated.describe()
    assert_masked(rotated)
    assert_masked(KeyState("alice", 90, "us-east-1", KeyRecord(KEY_ID, "2026", "2026", KEY_ID)))
