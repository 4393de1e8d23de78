"""The AWS files, before a code is spent: the real `credd check`, `credd run` and `credctl`.

A credentials file credd could not use (unparseable as botocore parses it, someone
else's, hard-linked, unreadable) or a source without keys is an error of `credd check`
(exit 2) and, in a running daemon, puts the profiles it blocks in `error` at once with
the reason and the fix, asking for no code that could not be written. No file is ever
changed by finding a problem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import AWS, CREDD, LONG_TERM_KEY_ID, LONG_TERM_SECRET, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts
from support.systemd_user import ensure_account
from support.user_venv import installed_venv

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KEYS = f"aws_access_key_id = {LONG_TERM_KEY_ID}\naws_secret_access_key = {LONG_TERM_SECRET}\n"
E2E_USER = "credd-e2e"


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A sandbox (HOME, policy, socket) pointed at the fault-injecting STS."""
    sandbox = Sandbox(tmp_path, fake_sts.url)
    yield sandbox
    sandbox.close()


def check(box: Sandbox) -> subprocess.CompletedProcess[str]:
    """The real `credd check` in the sandbox."""
    return subprocess.run([CREDD, "check"], env=box.env, capture_output=True, text=True, timeout=60)


def snapshot(path: Path) -> tuple[bytes, int, int, int]:
    """A file's bytes, mode, mtime and inode: what 'unchanged' means here."""
    info = path.stat()
    return path.read_bytes(), info.st_mode, info.st_mtime_ns, info.st_ino


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            f"[default]\n{KEYS}[unrelated]\nx = 1\n[default]\nregion = eu-west-1\n",
            ":6: section [default] appears twice (first on line 1)",
        ),
        (
            f"[default]\n{KEYS}aws_access_key_id = AKIAOTHER\n",
            ":4: key 'aws_access_key_id' appears twice in section [default] (first on line 2)",
        ),
    ],
    ids=["duplicate-section", "duplicate-key"],
)
def test_check_refuses_a_file_botocore_would_refuse(box: Sandbox, text: str, reason: str) -> None:
    """Exit 2, the file and line with botocore's objection, and every profile it blocks;
    the file is not touched, and no secret is shown."""
    box.credentials.write_text(text)
    before = snapshot(box.credentials)
    done = check(box)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines == [
        f"{box.credentials}{reason}; fix the file by hand, credd will not rewrite it",
        "  so no profile can be renewed until it is fixed: session-alice, prod-admin, prod-ro",
    ]
    assert LONG_TERM_SECRET not in done.stderr
    assert snapshot(box.credentials) == before


def test_check_refuses_another_users_file_and_a_hard_linked_one(box: Sandbox) -> None:
    """Someone else's file: exit 2 saying whose it is and what to do; a file with two hard
    links: exit 2 saying so. Neither file is changed."""
    os.chown(box.credentials, 4242, 4242)
    before = snapshot(box.credentials)
    done = check(box)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"{box.credentials}: belongs to uid 4242, not to you (uid 0); credd will not replace"
        " another user's file: chown it to yourself or set credentials_file in the policy"
    )
    assert snapshot(box.credentials) == before

    os.chown(box.credentials, 0, 0)
    other = box.credentials.with_name("credentials.bak")
    os.link(box.credentials, other)
    done = check(box)
    assert done.returncode == 2
    assert f"{box.credentials}: has 2 hard links" in done.stderr
    assert "make the others symlinks to it" in done.stderr
    assert box.credentials.stat().st_nlink == 2


def test_check_refuses_a_source_without_keys(box: Sandbox) -> None:
    """`default` lost its secret: exit 2 naming the profile, the source and how to add the
    keys; the other profiles (chained on it) are not listed."""
    box.credentials.write_text(f"[default]\naws_access_key_id = {LONG_TERM_KEY_ID}\n")
    done = check(box)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{box.policy}: 1 profile cannot be renewed",
        "  profiles.session-alice: source profile default has no aws_access_key_id and"
        f" aws_secret_access_key in {box.credentials} or the keyring; add them with"
        " `aws configure --profile default`, `credctl import --csv FILE` or `credd keys add`",
    ]


def test_check_refuses_an_unreadable_file_as_an_unprivileged_user(tmp_path: Path) -> None:
    """As a user for whom mode 000 means unreadable (root reads anything): exit 2 with
    `chmod 600 PATH` as the fix, where it used to exit 0 with a warning."""
    account = ensure_account(E2E_USER)
    bin_dir = installed_venv(REPO)
    home = Path(tempfile.mkdtemp(prefix="credd-unreadable-", dir="/tmp"))
    try:
        box = Sandbox(tmp_path, "http://127.0.0.1:9")
        (home / ".aws").mkdir()
        shutil.copytree(box.home / ".config", home / ".config")
        credentials = home / ".aws" / "credentials"
        credentials.write_text(box.credentials_text)
        for path in [home, *home.rglob("*")]:
            os.chown(path, account.uid, account.gid)
        credentials.chmod(0o000)
        done = subprocess.run(
            [
                "setpriv",
                f"--reuid={account.uid}",
                f"--regid={account.gid}",
                "--init-groups",
                "env",
                "-i",
                f"HOME={home}",
                "PATH=/usr/bin:/bin",
                str(bin_dir / "credd"),
                "check",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[0] == (
            f"{credentials}: cannot be read (EACCES: Permission denied); make it readable by"
            f" you alone: `chmod 600 {credentials}`"
        )
        assert credentials.stat().st_mode & 0o777 == 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_daemon_blocks_at_start_asks_no_code_and_recovers_on_reload(
    box: Sandbox, fake_sts: FakeSts
) -> None:
    """A duplicate [default] at start: every profile is `error` at once with the line and
    the fix (not `awaiting-code`); `credctl token --profile` is refused with exit 1 before
    the code reaches AWS; the file is untouched. Fixed and reloaded, the session asks for
    a code and a code renews it."""
    box.credentials.write_text(f"[default]\n{KEYS}[default]\nregion = eu-west-1\n")
    before = snapshot(box.credentials)
    box.start()
    status = {p["name"]: p for p in box.status()["profiles"]}
    for name in ("session-alice", "prod-admin", "prod-ro"):
        assert status[name]["state"] == "error"
        assert "section [default] appears twice" in status[name]["last_error"]
        assert "fix the file by hand" in status[name]["last_error"]
        assert status[name]["next_refresh_at"] is None

    done = box.ctl("token", "123456", "--profile", "session-alice")
    assert done.returncode == 1
    assert done.stderr.startswith(
        "credctl: error: session-alice cannot be renewed until this is fixed (the code was"
        " not used): "
    )
    assert fake_sts.calls_for("GetSessionToken") == []
    assert snapshot(box.credentials) == before

    box.credentials.write_text(f"[default]\n{KEYS}")
    assert box.ctl("reload").returncode == 0
    box.wait_states({"session-alice": "awaiting-code"})
    assert box.status()["profiles"][0]["last_error"] is None
    done = box.ctl("token", "123456")
    assert done.returncode == 0, done.stderr
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh"})
    assert LONG_TERM_SECRET not in box.log_text()


POLICY_NO_REGION = f"""version: 1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
  prod-admin:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/Admin
"""
CONFIG = (
    "# mine\n[default]\nregion = eu-west-1\n\n"
    "[sso-session corp]\nsso_region = us-east-1\n"
    "[profile prod-admin]\noutput = json\n"
)


class NoRegionSandbox(Sandbox):
    """The sandbox with no AWS_REGION or AWS_DEFAULT_REGION: the region is only under
    [default] in ~/.aws/config, as on the machine the issue was seen on."""

    @property
    def env(self) -> dict[str, str]:
        """The sandbox's environment less the region variables."""
        env = dict(super().env)
        env.pop("AWS_REGION")
        env.pop("AWS_DEFAULT_REGION")
        return env


def caller_identity(box: Sandbox, profile: str) -> subprocess.CompletedProcess[str]:
    """The real AWS CLI, `sts get-caller-identity` with `--profile`."""
    return subprocess.run(
        [AWS, "--profile", profile, "sts", "get-caller-identity", "--output", "json"],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_new_profile_gets_its_region_so_the_aws_cli_works_at_once(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    """The daemon writes session-alice and prod-admin: session-alice, with no config section,
    gets `[profile session-alice]` with the region credd used ([default]'s), appended with
    every other byte kept; prod-admin's existing section is not touched. `aws --profile
    session-alice` then works; without that section it would not."""
    box = NoRegionSandbox(tmp_path, fake_sts.url, policy_text=POLICY_NO_REGION)
    config = box.home / ".aws" / "config"
    config.write_text(CONFIG)
    try:
        box.start()
        assert box.ctl("token", "123456").returncode == 0
        box.wait_states({"session-alice": "fresh", "prod-admin": "fresh"})
        deadline = time.monotonic() + 20
        while "[profile session-alice]" not in config.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert config.read_text() == CONFIG + "\n[profile session-alice]\nregion = eu-west-1\n"

        done = caller_identity(box, "session-alice")
        assert done.returncode == 0, done.stderr
        assert '"Account"' in done.stdout

        config.write_text(CONFIG)  # the control: the region under [default] is not enough
        done = caller_identity(box, "session-alice")
        assert done.returncode != 0
        assert "You must specify a region" in done.stderr
    finally:
        box.close()
