"""The real daemon with its source's keys in a real Secret Service (GNOME Keyring on a
private bus): keys moved in with `credd keys import`, sessions and roles renewed from the
keyring, a locked keyring giving `error` to the one profile that needs it and recovering
after unlock with no restart; the long-term secret never in the file, a log or output."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest
from support.daemon import CREDD, LONG_TERM_SECRET, MFA_SERIAL, Sandbox
from support.secret_service import SecretService

pytestmark = pytest.mark.slow

POLICY = f"""version: 1
defaults:
  duration: 12h
  region: us-east-1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
  prod-admin:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/Admin
  ops:
    source_profile: default
    role_arn: arn:aws:iam::123456789012:role/Ops
    duration: 1h
"""


@pytest.fixture
def box(tmp_path: Path, moto_sts_url: str, secret_service_env: SecretService) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, moto_sts_url, policy_text=POLICY, extra_env=secret_service_env.env)
    yield box
    box.close()


def credd(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CREDD, *args], env=box.env, capture_output=True, text=True, timeout=60)


def profile(box: Sandbox, name: str) -> dict[str, object]:
    return next(p for p in box.status()["profiles"] if p["name"] == name)


def test_the_daemon_renews_from_the_keyring_and_survives_a_locked_keyring(
    box: Sandbox, secret_service_env: SecretService
) -> None:
    """Moved in: botocore finds no long-term secret in the file, the daemon renews every
    profile from the keyring. Locked: only `ops` (which needs the keys now) is `error`,
    with the reason; unlocked: it is fresh again by itself."""
    outputs: list[str] = []
    moved = credd(box, "keys", "import", "default")
    outputs.append(moved.stdout + moved.stderr)
    assert moved.returncode == 0, moved.stderr
    text = box.credentials.read_text()
    assert LONG_TERM_SECRET not in text
    session = botocore.session.Session(profile="default")
    session.set_config_variable("credentials_file", str(box.credentials))
    assert "aws_secret_access_key" not in session.get_scoped_config()
    check = credd(box, "check")
    outputs.append(check.stdout + check.stderr)
    assert check.returncode == 0, check.stderr
    assert "keys in the keyring: default" in check.stdout

    box.start()
    box.wait_states({"ops": "fresh"})
    token = box.ctl("token", "123456")
    outputs.append(token.stdout + token.stderr)
    assert token.returncode == 0, token.stderr
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh", "ops": "fresh"})

    secret_service_env.lock()
    refresh = box.ctl("refresh", "ops")
    outputs.append(refresh.stdout + refresh.stderr)
    box.wait_states({"ops": "error"})
    ops = profile(box, "ops")
    assert "the keyring is locked" in str(ops["last_error"])
    assert box.states()["session-alice"] == "fresh"
    assert box.states()["prod-admin"] == "fresh"

    secret_service_env.unlock()
    box.wait_states({"ops": "fresh"}, timeout=60)
    assert profile(box, "ops")["last_error"] is None
    assert box.proc is not None and box.proc.poll() is None, "no restart"

    status = box.ctl("status")
    outputs.append(status.stdout + status.stderr)
    assert box.stop() == 0
    for text in [*outputs, box.log_text(), box.credentials.read_text()]:
        assert LONG_TERM_SECRET not in text
