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
import threading
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


def sections_of(names: Collection[str]) -> set[str]:
    """The config file's sections (raw names, however spelt) as `section_for` spells them:
    `[profile   x]` and `[profile "x"]` are both `profile x`; others (sso-session) are left out.
    """
    profiles = (config_profile_name(name) for name in names)
    return {section_for(profile) for profile in profiles if profile is not None}


def add_regions(
    path: Path, regions: Mapping[str, str], writer: CredentialsWriter | None = None
) -> list[str]:
    """Add `[profile NAME]` with its region to the config file at `path` for each profile
    of `regions` that has no section there, in one write; the profiles added. Raises
    CreddError when the file cannot be parsed or written (it is then left as it was)."""
    profile_of = {section_for(profile): profile for profile in regions}
    writer = CredentialsWriter(path) if writer is None else writer
    try:
        added = writer.add_sections(
            {section_for(profile): {"region": region} for profile, region in regions.items()},
            present=sections_of,
        )
    finally:
        # Lets go of the replaced file: late writes are carried over in the credentials
        # file only; `writer` still knows what it wrote, so its next write need not wait.
        writer.close()
    for section in added:
        log.info("added [%s] with region %s to %s", section, regions[profile_of[section]], path)
    return [profile_of[section] for section in added]


def add_region(path: Path, profile: str, region: str) -> bool:
    """`add_regions` for one profile: whether its section was added."""
    return bool(add_regions(path, {profile: region}))


class RegionRecorder:
    """Adds each profile's region to the AWS config file once per process.

    The daemon `claim`s a profile on its event loop after each write of it, which
    queues its region the first time; when that claim found nothing queued, the daemon
    runs one `flush` in a worker thread, which writes every region queued by then in
    one rewrite of the file (1,000 new profiles are a few rewrites, not 1,000). A
    failure is logged, never raised: the credentials are written, and the region is a
    convenience. One writer serves every flush, so a flush does not wait for the file
    the last one wrote to settle.
    """

    def __init__(self, path: Path, writer: CredentialsWriter | None = None) -> None:
        self.path = path
        self._claimed: set[str] = set()
        self._queued: dict[str, str] = {}
        self._lock = threading.Lock()
        self._writer = writer if writer is not None else CredentialsWriter(path)

    def __repr__(self) -> str:
        return f"RegionRecorder({str(self.path)!r}, queued={len(self._queued)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RegionRecorder:
        """For `AWS_CONFIG_FILE`, else `~/.aws/config`."""
        return cls(Path(aws_config_path(env)))

    def claim(self, profile: str, region: str) -> bool:
        """Queue `profile`'s region the first time it is named; True when nothing else was
        queued, and a `flush` is to be started."""
        with self._lock:
            if profile in self._claimed:
                return False
            self._claimed.add(profile)
            self._queued[profile] = region
            return len(self._queued) == 1

    def flush(self) -> None:
        """Add every region queued so far, in one write; a failure is logged."""
        with self._lock:
            queued, self._queued = self._queued, {}
        if not queued:
            return
        try:
            add_regions(self.path, queued, self._writer)
        except CreddError as error:
            names = sorted(queued)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            log.warning("the region of %s was not added: %s", shown, error.message)
