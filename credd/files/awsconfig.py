"""The AWS config file's `[profile NAME]` sections, added once: the region of a new profile.

Standard library only. SPEC.md "Region for new profiles": when credd writes a
profile that has no section in the AWS config file (`AWS_CONFIG_FILE`, else
`~/.aws/config`), it adds `[profile NAME]` with the region it used, so that
`aws --profile NAME ...` works with no further setup. It never changes a section
that exists, whatever it holds (a `[profile NAME]` without a region is left as
the person wrote it).

The file goes through the credentials file's editor and safe writer: the same
INI grammar as botocore's, every other byte kept (`[default]`, `[sso-session
...]`, `[services ...]`, comments, nested settings), a lock, a re-read, a
temp file and a rename; the result is 0600, as `aws configure` makes it. A file
botocore could not parse is never rewritten.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Collection, Mapping
from pathlib import Path

from credd.errors import CreddError
from credd.files.lookup import config_profile_name
from credd.files.writer import CredentialsWriter
from credd.paths import aws_config_path

log = logging.getLogger(__name__)


def section_for(profile: str) -> str:
    """The config file's section for `profile`: `default`, or `profile NAME` (quoted as
    botocore's shlex reads it when the name needs it)."""
    return "default" if profile == "default" else f"profile {shlex.quote(profile)}"


def has_section(sections: Collection[str], profile: str) -> bool:
    """Whether one of the config file's `sections` (raw names) is `profile`'s."""
    return any(config_profile_name(name) == profile for name in sections)


def add_region(path: Path, profile: str, region: str) -> bool:
    """Add `[profile NAME]` with `region` to the config file at `path` unless the profile
    has a section there; whether it was added. Raises CreddError when the file cannot be
    parsed or written (it is then left as it was)."""
    writer = CredentialsWriter(path)
    try:
        added = writer.add_section(
            section_for(profile),
            {"region": region},
            present=lambda sections: has_section(sections, profile),
        )
    finally:
        writer.close()
    if added:
        log.info("added [%s] with region %s to %s", section_for(profile), region, path)
    return added


class RegionRecorder:
    """Adds each profile's region to the AWS config file once per process (`add_region`).

    The daemon `claim`s a profile on its event loop after each write of it (true only
    the first time), then `add`s it in a worker thread. A failure is logged, never
    raised: the credentials are written, and the region is a convenience.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._claimed: set[str] = set()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RegionRecorder:
        """For `AWS_CONFIG_FILE`, else `~/.aws/config`."""
        return cls(Path(aws_config_path(env)))

    def claim(self, profile: str) -> bool:
        """True the first time `profile` is named: its region is to be added."""
        if profile in self._claimed:
            return False
        self._claimed.add(profile)
        return True

    def add(self, profile: str, region: str) -> None:
        """`add_region`, with a failure logged (the file is then left as it was)."""
        try:
            add_region(self.path, profile, region)
        except CreddError as error:
            log.warning("the region of %s was not added: %s", profile, error.message)
