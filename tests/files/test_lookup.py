"""Read-only lookups in the AWS config and credentials files (credd/files/lookup.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credd.files.lookup import AwsFiles, config_profile_name

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"

CONFIG = """\
[default]
region = eu-west-1
mfa_serial = arn:aws:iam::123456789012:mfa/from-config

[profile dev]
region = us-west-2
role_arn = arn:aws:iam::123456789012:role/Dev
source_profile = default

[profile "spaced name"]
region = ap-south-1

[sso-session corp]
sso_region = us-east-1

[services local]
sts =
  endpoint_url = http://127.0.0.1:1
"""

CREDENTIALS = f"""\
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = {SECRET}
mfa_serial = arn:aws:iam::123456789012:mfa/from-credentials

[user2]
aws_access_key_id = AKIAI44QH8DHBEXAMPLE
aws_secret_access_key = {SECRET}
mfa_serial = arn:aws:iam::123456789012:mfa/user2

[session-x]
aws_access_key_id = ASIAEXAMPLE
aws_secret_access_key = {SECRET}
aws_session_token = {TOKEN}

[old-token]
aws_access_key_id = ASIAEXAMPLE
aws_secret_access_key = {SECRET}
aws_security_token = {TOKEN}

[half]
aws_access_key_id = AKIAEXAMPLE

[blank-secret]
aws_access_key_id = AKIAEXAMPLE
aws_secret_access_key =
"""


@pytest.fixture
def files(tmp_path: Path) -> AwsFiles:
    (tmp_path / "config").write_text(CONFIG)
    (tmp_path / "credentials").write_text(CREDENTIALS)
    return AwsFiles.load(tmp_path / "credentials", {"AWS_CONFIG_FILE": str(tmp_path / "config")})


def test_profiles_come_from_both_files_with_config_prefixes_stripped(files: AwsFiles) -> None:
    """`[default]` and `[profile NAME]` in config, `[NAME]` in credentials; other sections not."""
    assert set(files.config) == {"default", "dev", "spaced name"}
    assert files.has_profile("dev")
    assert files.has_profile("user2")
    assert files.has_profile("spaced name")
    assert not files.has_profile("corp")
    assert not files.has_profile("local")
    assert not files.has_profile("profile dev")
    assert not files.has_profile("missing")


def test_mfa_serial_prefers_config_then_credentials(files: AwsFiles) -> None:
    """The config profile's mfa_serial wins; else the credentials section's (mfa-login)."""
    assert files.mfa_serial_for("default") == "arn:aws:iam::123456789012:mfa/from-config"
    assert files.mfa_serial_for("user2") == "arn:aws:iam::123456789012:mfa/user2"
    assert files.mfa_serial_for("dev") is None
    assert files.mfa_serial_for("missing") is None


def test_region_comes_from_config_only(files: AwsFiles) -> None:
    """`region` is a config setting; a credentials section cannot set it."""
    assert files.region_for("default") == "eu-west-1"
    assert files.region_for("dev") == "us-west-2"
    assert files.region_for("user2") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", True),
        ("user2", True),
        ("session-x", False),  # a session token: temporary credentials
        ("old-token", False),  # the legacy token key means the same
        ("half", False),  # no secret
        ("blank-secret", False),  # an empty value is no value
        ("dev", False),  # config only, a role
        ("missing", False),
    ],
)
def test_long_term_keys(files: AwsFiles, name: str, expected: bool) -> None:
    """Long-term keys: an access key id and a secret in the section, and no token."""
    assert files.has_long_term_keys(name) is expected


def test_keys_in_the_config_file_count_when_credentials_has_none(tmp_path: Path) -> None:
    """botocore also reads keys from a config profile; the credentials file comes first."""
    config = tmp_path / "config"
    config.write_text(
        f"[profile cfg]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {SECRET}\n"
        f"[profile both]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {SECRET}\n"
    )
    (tmp_path / "credentials").write_text(
        f"[both]\naws_access_key_id = ASIA\naws_secret_access_key = {SECRET}\n"
        f"aws_session_token = {TOKEN}\n"
    )
    files = AwsFiles.load(tmp_path / "credentials", {"AWS_CONFIG_FILE": str(config)})
    assert files.has_long_term_keys("cfg")
    assert not files.has_long_term_keys("both")
    assert files.has_temporary_credentials("both")


def test_no_secret_is_kept(files: AwsFiles) -> None:
    """Only key names and the non-secret values survive loading; no secret in the object."""
    dumped = repr(files) + repr(dict(files.credentials)) + repr(dict(files.config))
    assert SECRET not in dumped
    assert TOKEN not in dumped
    assert "AKIAIOSFODNN7EXAMPLE" not in dumped
    assert set(files.credentials["default"].values) == {"mfa_serial"}
    assert "aws_secret_access_key" in files.credentials["default"].keys


def test_missing_files_are_empty_without_a_note(tmp_path: Path) -> None:
    """No AWS files yet (a new machine) is normal: empty, nothing to report."""
    files = AwsFiles.load(tmp_path / "nope", {"AWS_CONFIG_FILE": str(tmp_path / "nope2")})
    assert not files.config
    assert not files.credentials
    assert files.notes == ()


def test_config_path_honours_aws_config_file_and_home(tmp_path: Path) -> None:
    """AWS_CONFIG_FILE first, else ~/.aws/config under the HOME given (never the real one)."""
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[profile home]\nregion = sa-east-1\n")
    (tmp_path / "other").write_text("[profile other]\nregion = af-south-1\n")
    by_home = AwsFiles.load(tmp_path / "credentials", {"HOME": str(tmp_path)})
    assert by_home.region_for("home") == "sa-east-1"
    by_var = AwsFiles.load(
        tmp_path / "credentials",
        {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "other")},
    )
    assert by_var.config_path == tmp_path / "other"
    assert by_var.region_for("other") == "af-south-1"
    assert not by_var.has_profile("home")


def test_unparseable_file_is_empty_with_a_note_that_quotes_no_line(tmp_path: Path) -> None:
    """A broken file is read as empty and noted with its line, never with its content."""
    credentials = tmp_path / "credentials"
    credentials.write_text(f"aws_secret_access_key = {SECRET}\n[ok]\n")
    files = AwsFiles.load(credentials, {"AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert not files.credentials
    assert len(files.notes) == 1
    assert f"{credentials}:1" in files.notes[0]
    assert SECRET not in files.notes[0]


def test_unparseable_line_later_in_the_file_is_located(tmp_path: Path) -> None:
    """A malformed line after a good section is noted by its line number."""
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[ok]\naws_access_key_id = A\n{SECRET}\n")
    files = AwsFiles.load(credentials, {"AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert f"{credentials}:3" in files.notes[0]
    assert SECRET not in files.notes[0]


def test_unreadable_file_is_empty_with_a_note(tmp_path: Path) -> None:
    """A path that cannot be read (here a directory) is noted, not raised."""
    (tmp_path / "config").mkdir()
    files = AwsFiles.load(tmp_path / "credentials", {"AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert not files.config
    assert "cannot be read" in files.notes[0]


def test_duplicate_sections_are_read_leniently(tmp_path: Path) -> None:
    """Lenient like the AWS CLI's reader: a section written twice is merged, not refused."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[a]\nmfa_serial = x\n[a]\nregion = y\n")
    files = AwsFiles.load(credentials, {"AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert files.mfa_serial_for("a") == "x"
    assert files.notes == ()


_SECTION_CHARS = list("profile xy\"'\\\t\r\n\x0b\x0c\x1c\xa0é#")


@settings(max_examples=400)
@given(st.text(alphabet=st.sampled_from(_SECTION_CHARS), max_size=14))
def test_a_config_section_names_its_profile_as_botocore_reads_it(tail: str) -> None:
    """`[profile NAME]` split as botocore splits it (shlex), fast path or not."""
    name = "profile" + tail
    try:
        parts = shlex.split(name)
    except ValueError:
        parts = []
    expected = parts[1] if len(parts) == 2 and parts[0] == "profile" else None
    assert config_profile_name(name) == expected
