"""credctl: light imports, exit codes without a daemon, and its output for people."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from credd import ctl

CREDCTL = str(Path(sys.executable).with_name("credctl"))
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_credctl_starts_on_the_standard_library_alone() -> None:
    """After importing credctl (and running its import path) no heavy library is loaded."""
    probe = (
        "import sys, credd.ctl, credd.client, credd.protocol, credd.csvimport, credd.writer;"
        "heavy = [m for m in ('boto3', 'botocore', 'apscheduler', 'yaml', 'sdnotify')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_every_daemon_command_exits_3_when_credd_is_not_running(tmp_path: Path) -> None:
    """No daemon: exit 3 and one line saying where it looked and how to start credd."""
    env = {**os.environ, "CREDD_SOCKET": str(tmp_path / "none.sock")}
    for args in (
        ["status"],
        ["token", "123456"],
        ["refresh"],
        ["reload"],
        ["prompt"],
        ["credential-process", "x"],
    ):
        done = subprocess.run(
            [CREDCTL, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 3, (args, done.stderr)
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith("credctl: error: credd is not running")
        assert str(tmp_path / "none.sock") in done.stderr
        assert "systemctl --user start credd" in done.stderr


def test_a_malformed_code_is_refused_before_any_connection(tmp_path: Path) -> None:
    """Bad input is exit 2 even with no daemon: it is checked first."""
    env = {**os.environ, "CREDD_SOCKET": str(tmp_path / "none.sock")}
    done = subprocess.run([CREDCTL, "token", "12a456"], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "credctl: error: a code is exactly 6 digits (0-9)\n"


def test_version_and_help() -> None:
    """--version names the version; --help lists the commands."""
    done = subprocess.run([CREDCTL, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("credctl 0.")
    done = subprocess.run([CREDCTL, "--help"], capture_output=True, text=True)
    for command in (
        "token",
        "status",
        "refresh",
        "reload",
        "prompt",
        "credential-process",
        "import",
    ):
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


def test_short_status_is_one_line_for_prompts() -> None:
    """`status --short`: each profile's time left, or its state when not fresh."""
    assert ctl.short_status(PROFILES, NOW) == "session-x 3h12m | admin error"
