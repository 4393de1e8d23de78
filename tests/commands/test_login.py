"""`credd login`: one `aws configure mfa-login` renewal with no daemon, run as the real CLI.

Against moto (any code is good) and against the fault-injecting STS (codes
checked with pyotp, refusals on demand), in a sandboxed HOME. The profile is
written exactly as the daemon writes it, the AWS CLI uses it, and nothing
secret is ever printed.
"""

from __future__ import annotations

import configparser
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from support.daemon import AWS, CREDD, CREDENTIALS_TEXT, LONG_TERM_KEY_ID, LONG_TERM_SECRET
from support.fake_sts import FakeSts
from support.secret_service import SecretService
from support.terminal import Terminal

from credd.credentials import Credentials, parse_utc
from credd.files import credfile

pytestmark = pytest.mark.slow

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
CONFIG_TEXT = f"[default]\nmfa_serial = {SERIAL}\n"
SESSION_KEYS = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "x_security_token_expires",
}
# A stale section another tool left: botocore would prefer its aws_security_token.
STALE_SESSION = (
    "[session-alice]\r\n"
    "aws_access_key_id = ASIASTALE00000000000\r\n"
    "aws_secret_access_key = staleSecret\r\n"
    "aws_session_token = staleToken\r\n"
    "aws_security_token = staleToken\r\n"
)


@dataclass
class Home:
    """A sandboxed HOME with long-term keys, an AWS config, and an env reaching one STS."""

    root: Path
    sts_url: str
    config_text: str = CONFIG_TEXT
    credentials_text: str = CREDENTIALS_TEXT

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        (self.home / ".aws").mkdir(parents=True)
        self.credentials = self.home / ".aws" / "credentials"
        self.credentials.write_bytes(self.credentials_text.encode())
        self.credentials.chmod(0o600)
        self.config = self.home / ".aws" / "config"
        self.config.write_text(self.config_text)

    @property
    def env(self) -> dict[str, str]:
        """Only the sandbox: no real ~/.aws, no proxy, no endpoint past 127.0.0.1."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
            "AWS_CONFIG_FILE": str(self.config),
            "AWS_ENDPOINT_URL_STS": self.sts_url,
            "AWS_ENDPOINT_URL": self.sts_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            # No daemon answers here: login works alone (tests/e2e/test_login_daemon.py).
            "CREDD_SOCKET": str(self.root / "no-daemon" / "credd.sock"),
        }

    def login(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real `credd login`; stdin is `input`, else empty (never a terminal)."""
        return subprocess.run(
            [CREDD, "login", *args],
            env=self.env,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )

    def sections(self) -> dict[str, dict[str, str]]:
        """The credentials file as botocore would read it."""
        parser = configparser.RawConfigParser()
        parser.read(self.credentials)
        return {name: dict(parser[name]) for name in parser.sections()}


@pytest.fixture
def moto_home(tmp_path: Path, moto_sts_url: str) -> Home:
    """A sandbox pointed at moto's server."""
    return Home(tmp_path, moto_sts_url)


@pytest.fixture
def fake_home(tmp_path: Path, otp_sts: FakeSts) -> Home:
    """A sandbox pointed at the fault-injecting STS."""
    return Home(tmp_path, otp_sts.url)


def daemon_bytes(original: str, name: str, section: dict[str, str]) -> bytes:
    """What the daemon's writer makes of `original` for these session credentials."""
    creds = Credentials(
        section["aws_access_key_id"],
        section["aws_secret_access_key"],
        section["aws_session_token"],
        parse_utc(section["x_security_token_expires"]),
    )
    return credfile.apply(original, {name: creds.as_file_keys()}).encode()


def secrets_of(home: Home, name: str) -> list[str]:
    """Values that must never be printed: the written secret, token and full key id."""
    section = home.sections()[name]
    return [
        section["aws_secret_access_key"],
        section["aws_session_token"],
        section["aws_access_key_id"],
        LONG_TERM_SECRET,
    ]


def test_login_against_moto_writes_what_the_daemon_writes(moto_home: Home) -> None:
    """With mfa_serial in ~/.aws/config and a code: `session-<device>` is written with the
    daemon's keys (no aws_security_token), every other byte is kept, mode 0600, and the
    output says what was written and when it expires, key id masked."""
    home = moto_home
    original = home.credentials.read_bytes().decode()
    done = home.login("--token-code", "123456")
    assert done.returncode == 0, done.stderr
    section = home.sections()["session-alice"]
    assert set(section) == SESSION_KEYS
    assert section["x_security_token_expires"].endswith("Z")
    assert home.credentials.read_bytes() == daemon_bytes(original, "session-alice", section)
    assert home.credentials.read_bytes().startswith(original.encode())
    assert home.credentials.stat().st_mode & 0o777 == 0o600

    first = done.stdout.splitlines()[0]
    assert first.startswith("wrote session-alice (key ****")
    assert "to ~/.aws/credentials; expires " in first
    assert section["x_security_token_expires"] in first
    assert "(in 11h" in first or "(in 12h" in first
    assert "--profile session-alice" in done.stdout
    for secret in [*secrets_of(home, "session-alice"), "123456"]:
        assert secret not in done.stdout + done.stderr


def test_the_aws_cli_uses_the_written_profile(moto_home: Home) -> None:
    """`aws sts get-caller-identity --profile session-alice` works with what login wrote,
    with no region in the environment: the new profile got `[profile session-alice]` with
    the region used, appended to the config (AWS_CONFIG_FILE, kept byte for byte), once."""
    home = moto_home
    elsewhere = home.root / "aws-config"
    home.config.rename(elsewhere)
    home.config = elsewhere
    env = {**home.env, "AWS_CONFIG_FILE": str(elsewhere)}
    done = subprocess.run(
        [CREDD, "login", "--token-code", "123456"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"added [profile session-alice] with region us-east-1 to {elsewhere}" in done.stdout
    assert elsewhere.read_text() == CONFIG_TEXT + "\n[profile session-alice]\nregion = us-east-1\n"
    done = subprocess.run(
        [AWS, "sts", "get-caller-identity", "--profile", "session-alice", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"Account"' in done.stdout

    before = elsewhere.stat()
    done = subprocess.run(
        [CREDD, "login", "--token-code", "654321"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "added" not in done.stdout
    assert elsewhere.stat().st_mtime_ns == before.st_mtime_ns


def test_a_stale_security_token_is_removed(tmp_path: Path, moto_sts_url: str) -> None:
    """An old section with aws_security_token (which botocore prefers) is left with the new
    session only; the sections around it keep every byte."""
    home = Home(tmp_path, moto_sts_url, credentials_text=CREDENTIALS_TEXT + "\r\n" + STALE_SESSION)
    original = home.credentials.read_bytes().decode()
    assert home.login("--token-code", "123456").returncode == 0
    section = home.sections()["session-alice"]
    assert set(section) == SESSION_KEYS
    assert "staleToken" not in home.credentials.read_text()
    assert home.credentials.read_bytes() == daemon_bytes(original, "session-alice", section)


def test_login_against_the_fake_sts_sends_the_right_request(
    fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """GetSessionToken goes out once, signed with the source's long-term key, with the
    device, the code, the asked duration and the config's region; the profile named by
    --update-profile is written."""
    home = fake_home
    home.config.write_text(CONFIG_TEXT + "region = eu-west-1\n")
    original = home.credentials.read_bytes().decode()
    code = totp.now()
    done = home.login("--token-code", code, "--update-profile", "mfa", "--duration-seconds", "3600")
    assert done.returncode == 0, done.stderr
    [call] = otp_sts.calls
    assert call.action == "GetSessionToken"
    assert call.access_key_id == LONG_TERM_KEY_ID
    assert call.serial == SERIAL
    assert call.code == code
    assert call.duration == 3600
    assert call.region == "eu-west-1"
    section = home.sections()["mfa"]
    assert section["aws_access_key_id"] in otp_sts.issued_keys()
    assert home.credentials.read_bytes() == daemon_bytes(original, "mfa", section)
    assert "(in 1h00m)" in done.stdout or "(in 59m)" in done.stdout
    for secret in [*secrets_of(home, "mfa"), code]:
        assert secret not in done.stdout + done.stderr


def test_the_code_may_come_on_stdin(fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP) -> None:
    """`ykman oath accounts code --single aws | credd login`: one line of stdin is the code;
    --serial-number names the device when the AWS files do not."""
    home = fake_home
    home.config.write_text("")
    done = home.login("--serial-number", SERIAL, input=totp.now() + "\n")
    assert done.returncode == 0, done.stderr
    assert otp_sts.calls[0].serial == SERIAL
    assert "session-alice" in home.sections()


def test_a_rejected_code_exits_1_and_writes_nothing(
    fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """AWS refusing the code: one `credd: error:` line, exit 1, the file byte-identical, the
    code sent once and never again."""
    home = fake_home
    before = home.credentials.read_bytes()
    otp_sts.fail_next("GetSessionToken", "reject_code")
    code = totp.now()
    done = home.login("--token-code", code)
    assert done.returncode == 1
    assert done.stderr.startswith("credd: error: ")
    assert "refused the MFA code" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert home.credentials.read_bytes() == before
    assert len(otp_sts.calls) == 1
    for secret in (code, LONG_TERM_SECRET):
        assert secret not in done.stdout + done.stderr


def test_a_failing_sts_exits_1_and_the_code_is_not_resent(
    fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """A 5xx is reported (exit 1), not retried: the code may have been used already."""
    home = fake_home
    before = home.credentials.read_bytes()
    otp_sts.fail_next("GetSessionToken", "http500")
    done = home.login("--token-code", totp.now())
    assert done.returncode == 1
    assert "temporary" in done.stderr
    assert len(otp_sts.calls) == 1
    assert home.credentials.read_bytes() == before


@pytest.mark.parametrize(
    "code",
    ["12345", "1234567", "\u0661\u0662\u0663\u0664\u0665\u0666", "12345a", ""],
    ids=["5-digits", "7-digits", "arabic-indic", "letter", "empty"],
)
def test_a_malformed_code_exits_2_and_never_reaches_sts(
    fake_home: Home, otp_sts: FakeSts, code: str
) -> None:
    """Not exactly six ASCII digits: exit 2, no STS call, nothing written, the text not
    repeated back."""
    home = fake_home
    before = home.credentials.read_bytes()
    done = home.login("--token-code", code)
    assert done.returncode == 2
    assert done.stderr == "credd: error: a code is exactly 6 digits (0-9)\n"
    assert otp_sts.calls == []
    assert home.credentials.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--duration-seconds", "899"], CONFIG_TEXT, "out of range"),
        (["--duration-seconds", "129601"], CONFIG_TEXT, "out of range"),
        ([], "", "--serial-number"),
        (["--serial-number", "arn:aws:iam::123:mfa/x"], "", "not an MFA device ARN"),
        (["--profile", "nobody"], CONFIG_TEXT, "has no aws_access_key_id"),
        (["--update-profile", "default"], CONFIG_TEXT, "is the source profile"),
        (["--update-profile", "unrelated"], CONFIG_TEXT, "holds long-term keys"),
    ],
    ids=[
        "too-short",
        "too-long",
        "no-device",
        "bad-device",
        "no-keys",
        "target-is-source",
        "target-has-keys",
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    fake_home: Home, otp_sts: FakeSts, args: list[str], config: str, message: str
) -> None:
    """Bad options, a missing device (stdin not a terminal), missing source keys, or a target
    that would replace long-term keys: one error line, exit 2, no STS call, file untouched."""
    home = fake_home
    home.config.write_text(config)
    before = home.credentials.read_bytes()
    done = home.login("--token-code", "123456", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("credd: error: ")
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert otp_sts.calls == []
    assert home.credentials.read_bytes() == before


def test_on_a_terminal_it_asks_like_mfa_login(
    fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP
) -> None:
    """On a terminal with nothing configured: "MFA serial number or ARN: ", then "Profile to
    update [session-alice]: " (Enter takes it), then "MFA token code: " without echo."""
    home = fake_home
    home.config.write_text("")
    term = Terminal([CREDD, "login"], home.env)
    try:
        term.expect("MFA serial number or ARN: ")
        term.send(SERIAL)
        term.expect("Profile to update [session-alice]: ")
        term.send("")
        term.expect("MFA token code: ")
        code = totp.now()
        term.send(code)
        term.expect("--profile session-alice")
    except BaseException:
        term.kill()
        raise
    assert term.finish() == 0
    assert code not in term.text(), "the code is not echoed"
    assert otp_sts.calls[0].serial == SERIAL
    assert "session-alice" in home.sections()


def test_login_reads_the_source_from_the_keyring_first(
    fake_home: Home, otp_sts: FakeSts, totp: pyotp.TOTP, secret_service_env: SecretService
) -> None:
    """Keys moved into the keyring (`credd keys import`): login signs with them, and the
    file keeps no long-term secret; locked, login says so (exit 1) and sends nothing."""
    home = fake_home
    env = {**home.env, **secret_service_env.env}
    moved = subprocess.run(
        [CREDD, "keys", "import", "default"], env=env, capture_output=True, text=True
    )
    assert moved.returncode == 0, moved.stderr
    assert LONG_TERM_SECRET not in home.credentials.read_text()

    secret_service_env.lock()
    done = subprocess.run(
        [CREDD, "login", "--token-code", "123456"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "profile default has no keys in ~/.aws/credentials, and cannot read" in done.stderr
    assert "locked" in done.stderr and otp_sts.calls == []

    secret_service_env.unlock()
    code = totp.now()
    done = subprocess.run(
        [CREDD, "login", "--token-code", code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    [call] = otp_sts.calls
    assert call.access_key_id == LONG_TERM_KEY_ID
    for secret in [*secrets_of(home, "session-alice"), code]:
        assert secret not in done.stdout + done.stderr
