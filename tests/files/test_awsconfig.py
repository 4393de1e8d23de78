"""Adding a new profile's region to the AWS config file (credd/files/awsconfig.py).

Once, for a profile with no section; every other byte kept; an existing section,
however it is spelt, never changed; the file read back by botocore itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from botocore.configloader import load_config

from credd.errors import CredentialsFileError
from credd.files.awsconfig import RegionRecorder, add_region, section_for
from credd.files.writer import CredentialsWriter

RICH = (
    "# my AWS config\r\n"
    "[default]\r\n"
    "region = eu-west-1\r\n"
    "s3 =\r\n"
    "  max_concurrent_requests = 20\r\n"
    "\r\n"
    "[sso-session corp]\r\n"
    "sso_region = us-east-1\r\n"
    "sso_start_url = https://corp.awsapps.com/start\r\n"
    "[services local]\r\n"
    "sts =\r\n"
    "  endpoint_url = http://127.0.0.1:4566\r\n"
    "; the next one is mine\r\n"
    "[profile   work]\r\n"
    "output = json"
)


def test_a_profile_without_a_section_gets_its_region_and_every_other_byte_is_kept(
    tmp_path: Path,
) -> None:
    """CRLF, comments, nested settings, [sso-session] and [services] and a last line with
    no newline are kept byte for byte; the new section comes last; botocore reads it."""
    config = tmp_path / "config"
    config.write_bytes(RICH.encode())
    assert add_region(config, "session-x", "eu-west-1") is True
    assert (
        config.read_bytes() == (RICH + "\r\n\r\n[profile session-x]\r\nregion = eu-west-1").encode()
    )
    profiles = load_config(str(config))["profiles"]
    assert profiles["session-x"]["region"] == "eu-west-1"
    assert profiles["work"] == {"output": "json"}
    assert config.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "existing",
    [
        "[profile session-x]\n",
        '[profile "session-x"]\nregion = us-west-2\n',
        "[profile  session-x ]\n",
    ],
)
def test_an_existing_section_is_never_changed(tmp_path: Path, existing: str) -> None:
    """However botocore spells it, with a region or none, the section is left alone and
    the file is not rewritten (same bytes, same inode)."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n" + existing)
    before = config.stat()
    text = config.read_bytes()
    assert add_region(config, "session-x", "eu-west-1") is False
    after = config.stat()
    assert config.read_bytes() == text
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_section_without_the_profile_prefix_does_not_count(tmp_path: Path) -> None:
    """`[session-x]` in the config file is not a profile to botocore: the right one is added."""
    config = tmp_path / "config"
    config.write_text("[session-x]\nregion = ap-south-1\n")
    assert add_region(config, "session-x", "eu-west-1") is True
    assert load_config(str(config))["profiles"]["session-x"] == {"region": "eu-west-1"}


def test_odd_names_and_default(tmp_path: Path) -> None:
    """A name with a space is quoted as botocore's shlex reads it; `default` is `[default]`,
    and an existing [default] is left alone."""
    assert section_for("default") == "default"
    assert section_for("my profile") == "profile 'my profile'"
    config = tmp_path / "config"
    assert add_region(config, "my profile", "eu-west-1") is True
    assert load_config(str(config))["profiles"]["my profile"] == {"region": "eu-west-1"}
    config.write_text("[default]\noutput = json\n")
    assert add_region(config, "default", "eu-west-1") is False
    assert config.read_text() == "[default]\noutput = json\n"


def test_a_missing_file_is_made_private(tmp_path: Path) -> None:
    """No ~/.aws yet: the directory is made 0700 and the file 0600 with just the section."""
    config = tmp_path / ".aws" / "config"
    assert add_region(config, "session-x", "us-east-1") is True
    assert config.read_text() == "[profile session-x]\nregion = us-east-1\n"
    assert (config.stat().st_mode & 0o777, config.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_an_unparseable_config_is_never_rewritten(tmp_path: Path) -> None:
    """A duplicate section: CredentialsFileError naming the line; the file is untouched;
    the recorder logs it and does not raise."""
    config = tmp_path / "config"
    text = "[default]\nregion = a\n[default]\n"
    config.write_text(text)
    with pytest.raises(CredentialsFileError) as refused:
        add_region(config, "session-x", "eu-west-1")
    assert f"{config}:3: section [default] appears twice" in refused.value.message
    recorder = RegionRecorder(config)
    assert recorder.claim("session-x", "eu-west-1") is True
    recorder.flush()
    assert config.read_text() == text


def test_the_recorder_claims_each_profile_once_and_honours_aws_config_file(
    tmp_path: Path,
) -> None:
    """`AWS_CONFIG_FILE` is the file; a profile is claimed (queued) only the first time."""
    config = tmp_path / "elsewhere"
    recorder = RegionRecorder.from_env({"AWS_CONFIG_FILE": str(config), "HOME": "/nowhere"})
    assert recorder.path == config
    assert recorder.claim("session-x", "eu-west-1") is True
    assert recorder.claim("session-x", "eu-west-1") is False
    recorder.flush()
    assert config.read_text() == "[profile session-x]\nregion = eu-west-1\n"
    assert recorder.claim("session-x", "eu-west-1") is False
    assert not os.path.exists("/nowhere")


def test_many_new_profiles_are_one_rewrite(tmp_path: Path) -> None:
    """1,000 new roles must not be 1,000 rewrites of the config (each waiting for the last
    to settle): what is queued when a flush runs goes in one rename; the first claim alone
    asks for a flush, and the next claim after it asks again."""
    config = tmp_path / "config"
    config.write_text("[profile role-3]\noutput = json\n")
    renames: list[Path] = []

    def rename(temp: Path, target: Path) -> None:
        renames.append(target)
        os.replace(temp, target)

    recorder = RegionRecorder(config, CredentialsWriter(config, replace=rename))
    starts = [recorder.claim(f"role-{n}", "eu-west-1") for n in range(50)]
    assert starts == [True] + [False] * 49
    recorder.flush()
    assert len(renames) == 1
    assert recorder.claim("role-50", "us-east-1") is True
    recorder.flush()
    assert len(renames) == 2
    sections = load_config(str(config))["profiles"]
    assert sections["role-3"] == {"output": "json"}, "an existing section is never changed"
    assert {name: sections[name]["region"] for name in ("role-0", "role-49", "role-50")} == {
        "role-0": "eu-west-1",
        "role-49": "eu-west-1",
        "role-50": "us-east-1",
    }
    assert len(sections) == 51
