"""Key rotation on real components (SPEC.md "Long-term keys", issue 13): the real `credd`
and `credctl`, moto's IAM and STS on 127.0.0.1 with authentication switched on to judge
the keys, a real Secret Service for the keyring case.

After a rotation the old key is refused by moto and the new one works; IAM lists exactly
one key and it is the one credd holds. Two keys present: nothing created, the reason
shown. `kill -9` at each step, then `credd keys list` or the next daemon start: exactly
one working key held, none orphaned, the journal closed. No secret in any output or log.
"""

from __future__ import annotations

import configparser
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import CREDD, MFA_SERIAL, Sandbox
from support.moto_iam import IamUser, enforced, make_user, works
from support.moto_sts import free_port, moto_sts_server
from support.secret_service import SecretService

from credd.adapters.keyring import Keyring
from credd.credentials import mask_key_id

pytestmark = pytest.mark.slow

POLICY = f"""version: 1
defaults:
  duration: 12h
  region: us-east-1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
    rotate_every: 90d
"""

PAUSE_POINTS = ("intent", "create-sent", "created", "stored", "verified", "deactivated", "deleted")


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """This module's own moto: authentication is switched on and off here, for all."""
    with moto_sts_server() as url:
        yield url


@pytest.fixture
def user(moto_url: str) -> IamUser:
    return make_user(moto_url)


def sandbox(root: Path, url: str, user: IamUser, extra: dict[str, str] | None = None) -> Sandbox:
    credentials = (
        "# keys from the console\n[default]\n"
        f"aws_access_key_id = {user.key_id}\naws_secret_access_key = {user.secret}\n"
        "region = us-east-1\n"
    )
    env = {
        # The generic endpoint leads nowhere: IAM and STS are reached by their own variables.
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ENDPOINT_URL_IAM": url,
        "AWS_ENDPOINT_URL_STS": url,
        **(extra or {}),
    }
    return Sandbox(root, url, policy_text=POLICY, credentials_text=credentials, extra_env=env)


@pytest.fixture
def box(tmp_path: Path, moto_url: str, user: IamUser) -> Iterator[Sandbox]:
    box = sandbox(tmp_path, moto_url, user)
    yield box
    box.close()


@pytest.fixture
def keyring_box(
    tmp_path: Path, moto_url: str, user: IamUser, secret_service_env: SecretService
) -> Iterator[Sandbox]:
    box = sandbox(tmp_path, moto_url, user, secret_service_env.env)
    moved = credd(box, "keys", "import", "default")
    assert moved.returncode == 0, moved.stderr
    yield box
    box.close()


def credd(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDD, *args],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def held(box: Sandbox, where: str) -> tuple[str, str]:
    """The key credd holds for `default`: in the keyring, or in the file."""
    if where == "keyring":
        stored = Keyring().get("default")
        assert stored is not None
        return stored.access_key_id, stored.secret_access_key
    parser = configparser.ConfigParser()
    parser.read(box.credentials)
    return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]


def journal(box: Sandbox) -> dict[str, Any]:
    path = box.home / ".local" / "state" / "credd" / "rotation.json"
    data: dict[str, Any] = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    return data


def assert_one_working_key(box: Sandbox, user: IamUser, where: str) -> tuple[str, str]:
    """IAM lists exactly one key, Active, the one credd holds; moto (enforcing) takes it."""
    key_id, secret = held(box, where)
    listed = user.access_keys()
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key_id, "Active")]
    assert journal(box)["open"] == {}
    with enforced(user.url):
        assert works(user.url, key_id, secret, user.name) == "ok"
    return key_id, secret


@pytest.mark.parametrize("where", ["file", "keyring"])
def test_credd_keys_rotate_replaces_the_key_and_the_old_one_stops_working(
    where: str, request: pytest.FixtureRequest, user: IamUser
) -> None:
    """Foreground, with a code: a new key where the old one lived; the old one refused."""
    box: Sandbox = request.getfixturevalue("keyring_box" if where == "keyring" else "box")
    rotated = credd(box, "keys", "rotate", "default", "--token-code", "123456")
    assert rotated.returncode == 0, rotated.stderr
    new_id, new_secret = held(box, where)
    assert new_id != user.key_id
    assert f"{mask_key_id(user.key_id)} deleted, {mask_key_id(new_id)} now in" in rotated.stdout
    assert_one_working_key(box, user, where)
    with enforced(user.url):
        assert works(user.url, user.key_id, user.secret, user.name) == "InvalidClientTokenId"
    text = box.credentials.read_text()
    assert text.startswith("# keys from the console\n[default]\n")
    if where == "keyring":
        assert "aws_access_key_id" not in text
    listed = credd(box, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["keys"]
    assert row["key_id"] == mask_key_id(new_id)
    assert row["created_at"] is not None
    assert row["rotate_every"] == 90 * 86400
    assert row["next_rotation"] is not None
    record = journal(box)["keys"]["default"]
    assert record["key_id"] == new_id
    for output in [rotated.stdout, rotated.stderr, listed.stdout, listed.stderr]:
        assert user.secret not in output and new_secret not in output
    journal_text = json.dumps(journal(box))
    assert user.secret not in journal_text and new_secret not in journal_text


def test_with_two_keys_present_nothing_is_created_and_the_reason_names_the_other(
    box: Sandbox, user: IamUser
) -> None:
    other = user.add_key()
    rotated = credd(box, "keys", "rotate", "default", "--token-code", "123456")
    assert rotated.returncode == 1
    assert "already has two access keys" in rotated.stderr
    assert mask_key_id(other) in rotated.stderr and other not in rotated.stderr
    assert sorted(k["AccessKeyId"] for k in user.access_keys()) == sorted([user.key_id, other])
    assert held(box, "file") == (user.key_id, user.secret)
    assert journal(box)["open"] == {}
    listed = credd(box, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "already has two access keys" in listed.stdout
    assert mask_key_id(other) in listed.stdout


def _wait_for_pause(process: subprocess.Popen[str], step: str, timeout: float = 60) -> str:
    """Read the process's stderr until it says it paused at `step`."""
    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            line = process.stderr.readline()
            seen += line
            if f"test pause at {step}" in line:
                return seen
        if process.poll() is not None:
            break
    raise AssertionError(f"no pause at {step}; stderr so far:\n{seen}")


@pytest.mark.parametrize(
    ("where", "step"),
    [("file", step) for step in PAUSE_POINTS]
    + [("keyring", step) for step in ("create-sent", "stored", "deactivated")],
)
def test_kill_9_at_each_step_then_keys_list_leaves_one_working_key(
    where: str, step: str, request: pytest.FixtureRequest, user: IamUser
) -> None:
    box: Sandbox = request.getfixturevalue("keyring_box" if where == "keyring" else "box")
    process = subprocess.Popen(
        [CREDD, "keys", "rotate", "default", "--token-code", "123456"],
        env={**box.env, "CREDD_TEST_PAUSE_AT": step},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_pause(process, step)
        assert "default" in journal(box)["open"], "paused with the rotation under way"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    listed = credd(box, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "rotation of default" in listed.stderr  # it says what it finished or undid
    key_id, secret = assert_one_working_key(box, user, where)
    before_store = step in ("intent", "create-sent", "created")
    assert (key_id == user.key_id) is before_store
    for output in (listed.stdout, listed.stderr):
        assert secret not in output and user.secret not in output


def test_the_daemon_rotates_on_credctl_rotate_and_renews_with_the_new_key(
    keyring_box: Sandbox, user: IamUser
) -> None:
    """The daemon's MFA session signs the rotation; status shows the key's age and next
    rotation; the session is then renewed with the new key (moto enforcing)."""
    box = keyring_box
    box.start()
    token = box.ctl("token", "123456", "--profile", "session-alice")
    assert token.returncode == 0, token.stderr
    rotated = box.ctl("rotate", "default")
    assert rotated.returncode == 0, rotated.stderr + box.log_text()
    new_id, new_secret = assert_one_working_key(box, user, "keyring")
    assert new_id != user.key_id
    assert "default: rotating its key, IAM called with the MFA session held" in box.log_text()
    assert f"{mask_key_id(new_id)} now in the keyring" in rotated.stdout
    (key,) = box.status()["keys"]
    assert key["profile"] == "default" and key["key_id"] == mask_key_id(new_id)
    assert key["rotation"] == "idle" and key["reason"] is None
    assert key["created_at"] is not None and key["next_rotation"] is not None
    status = box.ctl("status")
    assert "NEXT ROTATION" in status.stdout and mask_key_id(new_id) in status.stdout
    with enforced(user.url):
        again = box.ctl("token", "654321", "--profile", "session-alice")
        assert again.returncode == 0, again.stderr + box.log_text()
    assert box.stop() == 0
    for text in [token.stdout, rotated.stdout, rotated.stderr, status.stdout, box.log_text()]:
        assert user.secret not in text and new_secret not in text


def test_a_daemon_killed_mid_rotation_finishes_it_at_the_next_start(
    tmp_path: Path, moto_url: str, user: IamUser
) -> None:
    box = sandbox(tmp_path, moto_url, user, {"CREDD_TEST_PAUSE_AT": "stored"})
    try:
        box.start()
        assert box.ctl("token", "123456", "--profile", "session-alice").returncode == 0
        asking = subprocess.Popen(
            [str(Path(CREDD).with_name("credctl")), "rotate", "default"],
            env=box.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while "test pause at stored" not in box.log_text():
            assert time.monotonic() < deadline, box.log_text()
            time.sleep(0.1)
        assert "default" in journal(box)["open"]
        box.stop(signal.SIGKILL)
        asking.wait(30)
        del box.extra_env["CREDD_TEST_PAUSE_AT"]
        box.start()
        deadline = time.monotonic() + 60
        while journal(box)["open"]:
            assert time.monotonic() < deadline, box.log_text()
            time.sleep(0.1)
        key_id, secret = assert_one_working_key(box, user, "file")
        assert key_id != user.key_id
        assert "finished the rotation of default" in box.log_text()
        assert secret not in box.log_text() and user.secret not in box.log_text()
    finally:
        box.close()


def test_a_profile_without_keys_is_bad_input_and_nothing_changes(
    box: Sandbox, user: IamUser
) -> None:
    before = box.credentials.read_bytes()
    rotated = credd(box, "keys", "rotate", "nobody", "--token-code", "123456")
    assert rotated.returncode == 2
    assert rotated.stderr == (
        f"credd: error: profile nobody has no long-term keys in {box.credentials}"
        " (and no keyring is available)\n"
    )
    assert box.credentials.read_bytes() == before
    assert [k["AccessKeyId"] for k in user.access_keys()] == [user.key_id]
