"""The fault-injecting STS double is faithful enough for the real AWS CLI (and so botocore)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.fake_sts import DEFAULT_USER_ARN, MFA_FAILED, FakeSts, hang

from credd.credentials import parse_utc

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
KEY_ID = "AKIAFAKESTSCLITEST01"
SECRET = "fake-sts-cli-test-secret-0000000000000000"
AWS = Path(sys.executable).with_name("aws")


def aws(home: Path, url: str, *args: str, **keys: str) -> subprocess.CompletedProcess[str]:
    """Run the real AWS CLI in a sandboxed HOME, keys from the environment only."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "NO_PROXY": "127.0.0.1",
        "AWS_ACCESS_KEY_ID": keys.get("key_id", KEY_ID),
        "AWS_SECRET_ACCESS_KEY": keys.get("secret", SECRET),
    }
    if "token" in keys:
        env["AWS_SESSION_TOKEN"] = keys["token"]
    return subprocess.run(
        [str(AWS), "sts", *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def test_cli_get_caller_identity(fake_sts: FakeSts, home: Path) -> None:
    """`aws sts get-caller-identity` parses the fake's answer; the key id is recorded."""
    result = aws(home, fake_sts.url, "get-caller-identity")
    assert result.returncode == 0, result.stderr
    identity = json.loads(result.stdout)
    assert identity["Arn"] == DEFAULT_USER_ARN
    assert identity["Account"] == "123456789012"
    (call,) = fake_sts.calls
    assert (call.action, call.access_key_id, call.region) == (
        "GetCallerIdentity",
        KEY_ID,
        "us-east-1",
    )


def test_cli_get_session_token_then_reuse_is_refused(fake_sts: FakeSts, home: Path) -> None:
    """`aws sts get-session-token` with the expected code returns credentials that
    work for the next call; the same code again is refused with AWS's wording."""
    fake_sts.expected_code = "246810"
    args = ("get-session-token", "--serial-number", SERIAL, "--token-code", "246810")
    result = aws(home, fake_sts.url, *args, "--duration-seconds", "3600")
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    expires = parse_utc(creds["Expiration"])
    first = fake_sts.calls[0]
    assert (first.serial, first.duration, first.access_key_id) == (SERIAL, 3600, KEY_ID)

    whoami = aws(
        home,
        fake_sts.url,
        "get-caller-identity",
        key_id=creds["AccessKeyId"],
        secret=creds["SecretAccessKey"],
        token=creds["SessionToken"],
    )
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["Arn"] == DEFAULT_USER_ARN
    assert expires > parse_utc("2000-01-01T00:00:00Z")

    again = aws(home, fake_sts.url, *args)
    assert again.returncode != 0
    assert "AccessDenied" in again.stderr
    assert MFA_FAILED in again.stderr


def test_cli_sees_injected_fault(fake_sts: FakeSts, home: Path) -> None:
    """A programmed fault reaches the CLI as STS's error code."""
    fake_sts.fail_next("*", "invalid_client")
    result = aws(home, fake_sts.url, "get-caller-identity")
    assert result.returncode != 0
    assert "InvalidClientTokenId" in result.stderr
    assert fake_sts.calls[0].fault == "invalid_client"


def test_stop_releases_a_hanging_request() -> None:
    """Stopping the double ends a request held by `hang` instead of waiting it out."""
    sts = FakeSts().start()
    sts.fail_next("GetCallerIdentity", hang(300))
    host, port = sts.url.removeprefix("http://").split(":")
    errors: list[BaseException] = []

    def request() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request(
                "POST",
                "/",
                body="Action=GetCallerIdentity&Version=2011-06-15",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            connection.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)
        finally:
            connection.close()

    client = threading.Thread(target=request)
    client.start()
    while sts.pending_faults() and client.is_alive():  # until the handler holds the request
        threading.Event().wait(0.02)
    sts.stop()
    client.join(timeout=10)
    assert not client.is_alive()
    assert errors, "the held request must end without an answer"
    assert [c.outcome for c in sts.calls] == ["dropped"]
