"""`credctl exec`'s child (credd/ctl/child.py): its environment, its exit status, and the
signals passed on to it, in real processes (no daemon needed: `run` is what follows the
token)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from credd.ctl.child import SHADOWING, endpoint_environment, run, static_environment, ttl_seconds
from credd.errors import BadInputError

URL = "http://127.0.0.1:39113/v1/credentials"
TOKEN = "credd_" + "t" * 55

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/u",
    "AWS_PROFILE": "other",
    "AWS_DEFAULT_PROFILE": "other",
    "AWS_ACCESS_KEY_ID": "AKIASTALE",
    "AWS_SECRET_ACCESS_KEY": "stale",
    "AWS_SESSION_TOKEN": "stale",
    "AWS_SECURITY_TOKEN": "stale",
    "AWS_CREDENTIAL_EXPIRATION": "2020-01-01T00:00:00Z",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/token",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/web",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/Web",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/u/.aws/credentials",
    "AWS_CONFIG_FILE": "/home/u/.aws/config",
}


def test_endpoint_mode_points_the_sdk_at_the_endpoint_and_nothing_else() -> None:
    """The two variables are set; every other way to credentials or a profile is removed;
    the credentials file is hidden (SDKs prefer its [default] keys to an endpoint)."""
    child = endpoint_environment(PARENT, url=URL, token=TOKEN, region="eu-west-1")
    assert child["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == URL
    assert child["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == TOKEN
    assert child["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    for name in SHADOWING:
        if name not in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
            assert name not in child, name
    assert child["AWS_REGION"] == child["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert child["PATH"] == "/usr/bin:/bin" and child["AWS_CONFIG_FILE"] == "/home/u/.aws/config"
    assert PARENT["AWS_PROFILE"] == "other", "the parent's mapping is left alone"


def test_static_mode_sets_the_four_variables() -> None:
    """--env: the static keys, token and expiry; the endpoint's variables and profiles gone."""
    credentials = {
        "AccessKeyId": "ASIANEW",
        "SecretAccessKey": "newSecret",
        "SessionToken": "newToken",
        "Expiration": "2026-11-26T09:00:00Z",
    }
    child = static_environment(
        {**PARENT, "AWS_CONTAINER_CREDENTIALS_FULL_URI": URL}, credentials=credentials, region="r"
    )
    assert child["AWS_ACCESS_KEY_ID"] == "ASIANEW"
    assert child["AWS_SECRET_ACCESS_KEY"] == "newSecret"
    assert child["AWS_SESSION_TOKEN"] == "newToken"
    assert child["AWS_CREDENTIAL_EXPIRATION"] == "2026-11-26T09:00:00Z"
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ):
        assert name not in child


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ({}, ("eu-west-1", "eu-west-1")),
        ({"AWS_REGION": "us-west-2"}, ("us-west-2", None)),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, (None, "ap-south-1")),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, ("eu-west-1", "eu-west-1")),
    ],
)
def test_the_profiles_region_unless_one_is_set(
    given: dict[str, str], want: tuple[str | None, str | None]
) -> None:
    """AWS_REGION and AWS_DEFAULT_REGION get the profile's region unless the person set one."""
    child = endpoint_environment(given, url=URL, token=TOKEN, region="eu-west-1")
    assert (child.get("AWS_REGION"), child.get("AWS_DEFAULT_REGION")) == want


def test_ttl_takes_a_duration_within_bounds() -> None:
    """--ttl: a policy-style duration, 1s to the most; a mistake is BadInputError (exit 2)."""
    assert ttl_seconds(None, default=43200, most=604800) == 43200
    assert ttl_seconds("90m", default=43200, most=604800) == 5400
    for bad, words in (("0s", "from 1s to 168h"), ("169h", "from 1s to 168h"), ("12", "no unit")):
        with pytest.raises(BadInputError) as caught:
            ttl_seconds(bad, default=43200, most=604800)
        assert caught.value.message.startswith("--ttl ") and words in caught.value.message


@pytest.mark.parametrize("precise", [True, False])
@pytest.mark.parametrize(
    ("script", "status"),
    [
        ("raise SystemExit(0)", 0),
        ("raise SystemExit(3)", 3),
        ("raise SystemExit(255)", 255),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + 9),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 128 + 15),
    ],
)
def test_the_childs_exit_status_passes_through(script: str, status: int, precise: bool) -> None:
    """Its code as it is; 128+N when signal N ended it, as shells report it."""
    assert run([sys.executable, "-c", script], dict(os.environ), precise=precise) == status


@pytest.mark.parametrize("precise", [True, False])
def test_a_command_that_cannot_be_run_is_127(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], precise: bool
) -> None:
    """Not found on PATH, or not executable: 127 and one line naming it."""
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    for argv, reason in (
        (["credd-no-such-command-here"], "No such file or directory"),
        ([str(script)], "Permission denied"),
    ):
        assert run(argv, {"PATH": str(tmp_path)}, precise=precise) == 127
        err = capfd.readouterr().err
        assert err == f"credctl: error: cannot run {argv[0]}: {reason}\n"


# A child that records each signal it gets, says it is ready, and once signalled waits a
# moment for a second copy before it exits 42.
RECORDER = """
import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
got = []
def note(signum, frame):
    got.append(signum)
    log.write(signal.Signals(signum).name + "\\n")
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, note)
log.write("ready\\n")
while not got:
    time.sleep(0.01)
time.sleep(0.5)
sys.exit(42)
"""

HARNESS = """
import os, sys
from credd.ctl.child import run
sys.exit(run(sys.argv[2:], dict(os.environ), precise=sys.argv[1] == "precise"))
"""


def wait_for_line(path: Path, line: str, timeout: float = 20.0) -> list[str]:
    """Poll a file until it holds `line`; its lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if line in lines:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never held {line!r}")


@pytest.mark.parametrize("precise", [True, False])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_signals_sent_to_credctl_reach_the_child_once(
    tmp_path: Path, sig: signal.Signals, precise: bool
) -> None:
    """kill -TERM (INT, HUP, QUIT) of credctl: the child gets it once, and credctl exits
    with the child's status."""
    log = tmp_path / "signals"
    harness = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HARNESS,
            "precise" if precise else "all",
            sys.executable,
            "-c",
            RECORDER,
            str(log),
        ],
        start_new_session=True,  # a signal to the test's own group must not reach it
    )
    try:
        wait_for_line(log, "ready")
        harness.send_signal(sig)
        assert harness.wait(30) == 42
        assert log.read_text().splitlines() == ["ready", sig.name]
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
