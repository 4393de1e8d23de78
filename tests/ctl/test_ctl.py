"""credctl: light imports, exit codes without a daemon, and its output for people."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credd import cmdparser
from credd.cmdline import fast_parse
from credd.ctl import main as ctl
from credd.ctl.grammar import CREDCTL as TABLE

CREDCTL = str(Path(sys.executable).with_name("credctl"))
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC).timestamp()


def test_credctl_starts_on_the_standard_library_alone() -> None:
    """After importing credctl (and running its import path) no heavy library is loaded."""
    probe = (
        "import sys, credd.ctl.main, credd.ctl.client, credd.ctl.child, credd.protocol;"
        "import credd.files.csvimport, credd.files.writer;"
        "heavy = [m for m in ('boto3', 'botocore', 'apscheduler', 'yaml', 'sdnotify',"
        " 'keyring', 'secretstorage')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


# What credctl's token and status must not load: each costs milliseconds of its start.
SLOW_MODULES = (
    "argparse",
    "json",
    "re",
    "enum",
    "socket",
    "selectors",
    "pathlib",
    "datetime",
    "typing",
    "dataclasses",
    "inspect",
    "shutil",
    "contextlib",
    "signal",
)

CANNED = {
    "status": {"profiles": []},  # filled in below, once PROFILES is defined
    "token": {"profile": "session-x", "expires_at": "2026-11-26T11:12:00Z", "waiting": []},
    "endpoint-token": {
        "token": "canned-token",
        "url": "http://127.0.0.1:9/credentials",
        "region": "eu-west-1",
        "valid": True,
        "state": "fresh",
    },
    "endpoint-revoke": {},
}


@pytest.fixture
def canned_daemon() -> Iterator[str]:
    """A Unix socket answering `status` and `token` as credd does, one connection each."""
    directory = tempfile.mkdtemp(prefix="cc-", dir="/tmp")
    path = os.path.join(directory, "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                request = json.loads(conn.makefile("rb").readline())
                reply = {"ok": True, "result": CANNED[request["op"]]}
                conn.sendall(json.dumps(reply).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join()
        listener.close()
        os.unlink(path)
        os.rmdir(directory)


def test_token_status_and_exec_load_no_slow_module(canned_daemon: str) -> None:
    """The paths timed in bench/ (#1 token, #2 status, #9 exec) run on C modules and
    credd's own.

    A real run in a fresh interpreter: request, reply decoded, table printed. It runs
    without `site` (-S), with credd on PYTHONPATH: an editable install's import hook
    would load `re` and `pathlib` before credctl has a chance to.
    """
    CANNED["status"] = {"profiles": PROFILES}
    in_an_hour = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    CANNED["token"] = {**CANNED["token"], "expires_at": in_an_hour}
    probe = (
        "import sys; from credd.ctl import main as ctl;"
        "codes = [ctl.main(a) for a in (['status'], ['status', '--short'], ['token', '123456'],"
        " ['exec', 'session-x', '--', 'true'])];"
        f"slow = [m for m in {SLOW_MODULES!r} if m in sys.modules];"
        "print('RESULT', codes, ','.join(slow))"
    )
    env = {**os.environ, "CREDD_SOCKET": canned_daemon, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "session-x" in done.stdout
    assert f"session-x renewed; expires {in_an_hour} (in 59m)" in done.stdout
    assert done.stdout.splitlines()[-1] == "RESULT [0, 0, 0, 0] "


PLAIN_LINES = [
    ["token", "123456"],
    ["token", "123456", "--profile", "admin"],
    ["token", "--profile", "admin"],
    ["--debug", "token"],
    ["status"],
    ["status", "--short"],
    ["status", "--short", "session-x"],
    ["--socket", "/tmp/x.sock", "status", "--json"],
    ["status", "--json", "--socket", "/tmp/x.sock"],
    ["token", "123456", "--debug", "--socket", "/tmp/x.sock"],
    ["refresh"],
    ["refresh", "a", "b"],
    ["reload"],
    ["prompt"],
    ["credential-process", "admin"],
    ["exec", "admin", "--", "aws", "sts", "get-caller-identity", "--output", "json"],
    ["exec", "admin", "--env", "--ttl", "1h", "--", "terraform", "apply", "--", "-x"],
    ["--socket", "/tmp/x.sock", "exec", "--env", "admin", "--", "--"],
]


def plain_args(words: list[str]) -> dict[str, object] | None:
    """credctl's fast path."""
    return fast_parse(TABLE, words)


def parse(words: list[str]) -> dict[str, object]:
    """credctl's argparse path."""
    return cmdparser.parse(TABLE, words)


@pytest.mark.parametrize("words", PLAIN_LINES)
def test_the_common_command_lines_skip_argparse(words: list[str]) -> None:
    """Every form bench/ times, and the other everyday ones, parse without argparse."""
    plain = plain_args(words)
    assert plain is not None
    assert plain == parse(words)


COMMANDS = (
    "token",
    "status",
    "refresh",
    "reload",
    "rotate",
    "prompt",
    "credential-process",
    "import",
    "exec",
)


def test_every_daemon_command_exits_3_when_credd_is_not_running(tmp_path: Path) -> None:
    """No daemon: exit 3 and one line saying where it looked and how to start credd."""
    env = {**os.environ, "CREDD_SOCKET": str(tmp_path / "none.sock")}
    for args in (
        ["status"],
        ["token", "123456"],
        ["refresh"],
        ["reload"],
        ["rotate", "default"],
        ["prompt"],
        ["credential-process", "x"],
        ["exec", "x", "--", "true"],
        ["exec", "x", "--env", "--", "true"],
    ):
        done = subprocess.run(
            [CREDCTL, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 3, (args, done.stderr)
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith("credctl: error: credd is not running")
        assert str(tmp_path / "none.sock") in done.stderr
        assert "systemctl --user start credd" in done.stderr


def test_the_launcher_ends_with_every_byte_written(canned_daemon: str, tmp_path: Path) -> None:
    """The installed credctl ends by `exit_now`, without the interpreter's teardown, which
    is what would otherwise flush stdout: an answer still in its buffer (under the 4 KiB a
    pipe's or a file's buffer holds) comes out whole, to a pipe and to a file alike."""
    CANNED["status"] = {"profiles": PROFILES}
    expected = json.dumps(CANNED["status"], indent=2) + "\n"
    assert len(expected.encode()) < 4096  # held in the buffer until the end
    env = _buffered({**os.environ, "CREDD_SOCKET": canned_daemon})
    piped = subprocess.run([CREDCTL, "status", "--json"], env=env, capture_output=True, text=True)
    assert (piped.returncode, piped.stderr, piped.stdout) == (0, "", expected)
    with (tmp_path / "out").open("w") as out:
        to_file = subprocess.run([CREDCTL, "status", "--json"], env=env, stdout=out, text=True)
    assert to_file.returncode == 0
    assert (tmp_path / "out").read_text() == expected


@pytest.mark.parametrize(
    ("profiles", "where"),
    [(1, "when its buffer is flushed at the end"), (40, "as it writes, past the buffer")],
)
def test_a_reader_gone_ends_credctl_quietly_with_141(
    canned_daemon: str, profiles: int, where: str
) -> None:
    """`credctl status --json | head -1` with the reader gone: no traceback, nothing on
    stderr, and 141 (128 + SIGPIPE), what a shell reports for a tool that SIGPIPE ends.
    The broken pipe is met at the end, by `exit_now`'s flush, or in `main` as it writes."""
    CANNED["status"] = {"profiles": PROFILES * profiles}
    size = len(json.dumps(CANNED["status"], indent=2)) + 1
    assert (size < 4096) == (profiles == 1), size
    env = _buffered({**os.environ, "CREDD_SOCKET": canned_daemon})
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [CREDCTL, "status", "--json"], env=env, stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b""), where


def test_output_lost_to_a_full_disk_is_reported(canned_daemon: str) -> None:
    """A stdout that cannot take the answer for another reason (/dev/full) is not passed
    over in silence: the interpreter's own exit says so and exits 120."""
    CANNED["status"] = {"profiles": PROFILES}
    env = _buffered({**os.environ, "CREDD_SOCKET": canned_daemon})
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [CREDCTL, "status", "--json"], env=env, stdout=full, stderr=subprocess.PIPE
        )
    assert done.returncode == 120
    assert b"No space left on device" in done.stderr


def _buffered(env: dict[str, str]) -> dict[str, str]:
    """`env` with stdout buffered as by default (PYTHONUNBUFFERED makes it write through)."""
    env.pop("PYTHONUNBUFFERED", None)
    return env


def test_a_malformed_code_is_refused_before_any_connection(tmp_path: Path) -> None:
    """Bad input is exit 2 even with no daemon: it is checked first."""
    env = {**os.environ, "CREDD_SOCKET": str(tmp_path / "none.sock")}
    done = subprocess.run([CREDCTL, "token", "12a456"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "credctl: error: a code is exactly 6 digits (0-9)\n"


def test_exec_keeps_the_commands_own_words() -> None:
    """Everything after exec's `--` is the command's, however it looks; without `--` the
    words that look like no option are the command (argparse)."""
    words = ["--socket", "/s", "exec", "p", "--ttl", "2h", "--", "aws", "--profile", "x", "--"]
    for args in (plain_args(words), parse(words)):
        assert args is not None
        assert args["argv"] == ["aws", "--profile", "x", "--"]
        assert (args["profile"], args["ttl"], args["env"]) == ("p", "2h", False)
    assert parse(["exec", "p", "aws", "s3", "ls"])["argv"] == ["aws", "s3", "ls"]
    assert parse(["refresh", "--", "exec"])["profiles"] == ["exec"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exec", "p", "--"], "give the command to run after --"),
        (["exec", "p", "--ttl", "0s", "--", "true"], "--ttl must be from 1s to 168h"),
        (["exec", "p", "--ttl", "soon", "--", "true"], "--ttl 'soon' is not a duration"),
    ],
)
def test_exec_mistakes_exit_2_before_any_connection(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """No command, or a bad --ttl: exit 2 with one line, even with no daemon."""
    env = {**os.environ, "CREDD_SOCKET": str(tmp_path / "none.sock")}
    done = subprocess.run([CREDCTL, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith(f"credctl: error: {message}")
    assert done.stderr.count("\n") == 1


def test_version_and_help() -> None:
    """--version names the version; --help lists the commands."""
    done = subprocess.run([CREDCTL, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("credctl 0.")
    done = subprocess.run([CREDCTL, "--help"], capture_output=True, text=True)
    for command in COMMANDS:
        assert command in done.stdout


PROFILES = [
    {
        "name": "session-x",
        "kind": "mfa-session",
        "state": "fresh",
        "expires_at": "2026-11-26T11:12:00Z",
        "next_refresh_at": "2026-11-26T10:57:00Z",
        "last_error": None,
    },
    {
        "name": "admin",
        "kind": "role",
        "state": "error",
        "expires_at": None,
        "next_refresh_at": None,
        "last_error": "InvalidClientTokenId:\n the key is bad",
    },
]


def test_the_status_table_is_aligned_with_relative_times() -> None:
    """Columns line up; expiry shows absolute and relative time; errors stay on one line."""
    table = ctl.status_table(PROFILES, NOW, colour=False)
    lines = table.splitlines()
    assert lines[0].split() == [
        "PROFILE",
        "KIND",
        "STATE",
        "EXPIRES",
        "NEXT",
        "REFRESH",
        "LAST",
        "ERROR",
    ]
    assert lines[1].index("fresh") == lines[2].index("error") == lines[0].index("STATE")
    assert "2026-11-26 11:12Z (in 3h12m)" in lines[1]
    assert "in 2h57m" in lines[1]
    assert lines[2].endswith("InvalidClientTokenId: the key is bad")
    assert "\x1b[" not in table


def test_colour_only_when_asked() -> None:
    """Colour is applied to the state when the caller says the terminal wants it."""
    assert "\x1b[32m" in ctl.status_table(PROFILES, NOW, colour=True)


def test_short_status_names_only_the_profiles_that_need_you() -> None:
    """`status --short`: the profiles needing the person by name, the others counted with
    the soonest expiry."""
    assert ctl.short_status(PROFILES, NOW) == "admin error | 1 ok 3h12m"
    assert ctl.short_status(PROFILES[:1], NOW) == "1 ok 3h12m"
    assert ctl.short_status([], NOW) == "credd: no profiles"
    never = {**PROFILES[0], "name": "role", "state": "pending", "expires_at": None}
    assert ctl.short_status([never, *PROFILES], NOW) == "admin error | 1 ok 3h12m | 1 pending"


def test_short_status_stays_short_with_a_hundred_profiles() -> None:
    """However many profiles, at most two are named (the most pressing first) and the rest
    counted: one short line."""
    waiting = {**PROFILES[0], "name": "session-y", "state": "awaiting-code", "expires_at": None}
    expired = [
        {**PROFILES[0], "name": f"role-{n:03}", "state": "expired", "expires_at": None}
        for n in range(60)
    ]
    fresh = [
        {**PROFILES[0], "name": f"ok-{n:03}", "expires_at": f"2026-11-26T{10 + n % 9:02}:00:00Z"}
        for n in range(39)
    ]
    line = ctl.short_status([*expired, *fresh, waiting], NOW)
    assert line == "session-y awaiting-code, role-000 expired +59 more | 39 ok 2h00m"
    assert "\n" not in line


def test_short_status_of_one_profile_is_its_time_left_or_its_state() -> None:
    """`status --short PROFILE`: `3h12m` while valid, else the state."""
    assert ctl.short_profile(PROFILES[0], NOW) == "3h12m"
    assert ctl.short_profile(PROFILES[1], NOW) == "error"
    assert ctl.short_profile(PROFILES[0], NOW + 4 * 3600) == "expired"
    assert ctl.short_profile({**PROFILES[0], "state": "pending", "expires_at": None}, NOW) == (
        "pending"
    )
