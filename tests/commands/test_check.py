"""`credd check` (credd/commands/check.py): the summary, the problems, the exit status."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from support.daemon import CREDD
from support.secret_service import SecretService

from credd.adapters.keyring import Keyring
from credd.commands.check import run_check

DEVICE = "arn:aws:iam::123456789012:mfa/MFADeviceName"
ROLE = "arn:aws:iam::210987654321:role/Admin"

POLICY = f"""\
version: 1
defaults:
  refresh_before: 20m
profiles:
  session-MFADeviceName:
    source_profile: default
    duration: 36h
    code_command: [ykman, oath, accounts, code, --single, aws]
  prod-admin:
    source_profile: session-MFADeviceName
    role_arn: {ROLE}
    duration: 2h
    external_id: TopSecretId
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A sandbox HOME whose ~/.aws holds long-term keys and the device of `default`."""
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    (aws / "config").write_text(f"[default]\nregion = eu-central-1\nmfa_serial = {DEVICE}\n")
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = s3cret\n"
    )
    return {"HOME": str(tmp_path / "home")}


def check(path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_check(path, env, out, err)
    return status, out.getvalue(), err.getvalue()


def test_valid_policy_prints_summary_and_exits_0(env: dict[str, str], tmp_path: Path) -> None:
    """Exit 0; the summary names each profile's kind, source, device or role, duration with
    its cap, refresh lead and region, then the warnings; nothing on stderr."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    status, out, err = check(path, env)
    assert (status, err) == (0, "")
    assert f"policy:           {path}" in out
    assert f"credentials file: {tmp_path / 'home' / '.aws' / 'credentials'}" in out
    assert "session-MFADeviceName (mfa-session)" in out
    assert "  source       default (AWS files)" in out
    assert f"  device       {DEVICE}" in out
    assert "  duration     36h\n" in out
    assert "  refresh      20m before expiry" in out
    assert "  region       eu-central-1" in out
    assert "  code         ykman oath accounts code --single aws" in out
    assert "prod-admin (role)" in out
    assert "  source       session-MFADeviceName (managed here: renewed right after it)" in out
    assert f"  role         {ROLE}" in out
    assert "  session name credd-prod-admin" in out
    assert "  external id  set" in out
    assert "  duration     1h (capped from 2h: AWS limits role chaining to 1 hour)" in out
    assert "warnings:\n  profiles.prod-admin.duration: 2h capped to 1h" in out
    assert "TopSecretId" not in out
    assert "s3cret" not in out
    assert out.index("session-MFADeviceName (mfa-session)") < out.index("prod-admin (role)")


def test_invalid_policy_prints_every_problem_and_exits_2(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Exit 2; stderr holds the file, the count and each problem with its place; stdout is empty."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.replace("duration: 36h", "duration: 40h").replace("role_arn:", "role_arm:")
    )
    status, out, err = check(path, env)
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"{path}: policy is invalid (2 problems)"
    assert lines[1].startswith("  profiles.session-MFADeviceName.duration: 40h is out of range")
    assert lines[2].startswith(
        "  profiles.prod-admin.role_arm: unknown key; did you mean 'role_arn'?"
    )


def test_yaml_error_exits_2_with_line_and_column(env: dict[str, str], tmp_path: Path) -> None:
    """A syntax error is reported with the file, line and column."""
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nprofiles:\n  a: [\n")
    status, _, err = check(path, env)
    assert status == 2
    assert err.startswith(f"{path}: policy is invalid (1 problem)\n  line 4, column 1: ")


def test_missing_source_profile_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    """A source found nowhere is reported (exit 2) though the policy itself parses."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("source_profile: default", "source_profile: ghost"))
    status, out, err = check(path, env)
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: 1 profile cannot be renewed",
        "  profiles.session-MFADeviceName.source_profile: ghost is neither in the policy"
        f" nor in {tmp_path / 'home' / '.aws' / 'config'}"
        f" or {tmp_path / 'home' / '.aws' / 'credentials'}",
    ]


def test_missing_policy_file_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    """No policy yet: exit 2 and say how to make one."""
    status, out, err = check(tmp_path / "absent.yaml", env)
    assert (status, out) == (2, "")
    assert "does not exist; run `credd init`" in err


def test_a_policy_someone_else_could_change_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    """Group-writable: exit 2, stderr names the file, its mode and the fix; stdout empty,
    and the file is left as it is (credd check never changes modes)."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    path.chmod(0o664)
    status, out, err = check(path, env)
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        f"{path}: policy is invalid (1 problem)",
        f"  {path} is writable by group (mode 0664): anyone in its group could change the"
        f" commands credd runs; run `chmod go-w {path}`",
    ]
    assert path.stat().st_mode & 0o777 == 0o664


def test_a_15_minute_role_is_valid_with_no_refresh_before(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The real `credd check`: a role of 15m (AWS's minimum) with the built-in lead is
    valid (exit 0), renewed 7m30s before expiry, with a warning saying why; it used to be
    refused ("15m must be less than the duration 15m")."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.replace("duration: 2h", "duration: 15m").replace(
            "defaults:\n  refresh_before: 20m\n", ""
        )
    )
    path.chmod(0o600)
    done = subprocess.run(
        [CREDD, "check", "--policy", str(path)],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "  refresh      7m30s before expiry" in done.stdout
    assert (
        "  profiles.prod-admin.refresh_before (default 15m): 15m capped to 7m30s, half the"
        " duration 15m: credd renews no sooner than halfway through a session's life"
    ) in done.stdout


def test_sources_in_the_keyring(
    env: dict[str, str], tmp_path: Path, secret_service_env: SecretService
) -> None:
    """A source whose keys are only in the keyring is valid; plaintext keys left beside
    them are a warning (the keyring's are used)."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    credentials = tmp_path / "home" / ".aws" / "credentials"
    Keyring().put("default", "AKIAIOSFODNN7EXAMPLE", "s3cret")
    status, out, _ = check(path, env)
    assert status == 0
    assert "keys in the keyring: default" in out
    assert f"warning: {credentials} still holds plaintext keys for default" in out
    credentials.write_text("[default]\nregion = eu-central-1\n")
    status, out, err = check(path, env)
    assert (status, err) == (0, "")
    assert "keys in the keyring: default" in out and "warning: " not in out
    credentials.unlink()
    assert check(path, env)[0] == 0
