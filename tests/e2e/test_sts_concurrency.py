"""The real `credd run` overlaps its STS calls, up to `CREDD_STS_CONCURRENCY` and no more.

The STS is the stand-in of `support.slow_sts`: every call waits 0.2 s there and it counts
the calls it holds at once, so what it saw is what credd did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.configloader import load_config
from support.daemon import LONG_TERM_SECRET, MFA_SERIAL, Sandbox
from support.slow_sts import SlowSts, slow_sts_server

pytestmark = pytest.mark.slow

ROLES = 24


def _policy(roles: int) -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  region: us-east-1",
        "profiles:",
        "  session-alice:",
        "    source_profile: default",
        f"    mfa_serial: {MFA_SERIAL}",
    ]
    for n in range(roles):
        lines += [
            f"  role-{n:02d}:",
            "    source_profile: session-alice",
            f"    role_arn: arn:aws:iam::123456789012:role/R{n:02d}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def slow_sts() -> Iterator[SlowSts]:
    with slow_sts_server(latency=0.2) as server:
        yield server


def _renew_all(box: Sandbox, server: SlowSts) -> tuple[int, int]:
    box.start()
    server.stats()  # from here on
    done = box.ctl("token", "123456")
    assert done.returncode == 0, done.stderr
    box.wait_states(dict.fromkeys(_roles(), "fresh"))
    return server.stats()


@pytest.mark.parametrize(("setting", "expected"), [(None, 16), ("3", 3)])
def test_roles_renew_that_many_at_once(
    tmp_path: Path, slow_sts: SlowSts, setting: str | None, expected: int
) -> None:
    """One code in, 24 chained roles to renew: the stand-in holds exactly `expected` calls
    at once at the most (16 by default; 3 when set), and sees each call once."""
    env = {"CREDD_STS_CONCURRENCY": setting} if setting else {}
    box = Sandbox(tmp_path, slow_sts.url, policy_text=_policy(ROLES), extra_env=env)
    try:
        calls, most = _renew_all(box, slow_sts)
        regions = _regions_written(box, 1 + ROLES)
    finally:
        box.close()
    assert calls == 1 + ROLES
    assert most == expected
    # Every new profile got its region, in a few rewrites of the config, not one each.
    assert regions == {name: "us-east-1" for name in ["session-alice", *_roles()]}
    assert "was not added" not in box.log_text()


def _roles() -> list[str]:
    return [f"role-{n:02d}" for n in range(ROLES)]


def _regions_written(box: Sandbox, count: int, timeout: float = 15.0) -> dict[str, str]:
    """The regions of the AWS config's profiles once it has `count` of them."""
    config = box.home / ".aws" / "config"
    deadline = time.monotonic() + timeout
    profiles: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        if config.exists():
            profiles = load_config(str(config))["profiles"]
            if len(profiles) >= count:
                break
        time.sleep(0.1)
    return {name: section.get("region", "") for name, section in profiles.items()}


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("CREDD_STS_CONCURRENCY", "0", "is not a whole number from 1 to 64"),
        ("CREDD_STS_CONCURRENCY", "sixteen", "is not a whole number from 1 to 64"),
        ("CREDD_STS_READ_TIMEOUT", "15s", "is not a number of seconds above 0 and at most 300"),
    ],
)
def test_a_bad_setting_stops_credd_at_start_with_the_reason(
    tmp_path: Path, slow_sts: SlowSts, variable: str, value: str, reason: str
) -> None:
    box = Sandbox(tmp_path, slow_sts.url, extra_env={variable: value})
    try:
        process = box.start(wait=False)
        assert process.wait(30) == 2
        log = box.log_text()
    finally:
        box.close()
    assert f"credd: error: {variable}={value!r} {reason}" in log
    assert "Traceback" not in log
    assert LONG_TERM_SECRET not in log
    assert not box.socket.exists(), "nothing is served"
    assert box.credentials.read_bytes() == box.credentials_text.encode(), "nothing written"
