"""Read-only lookups in the AWS config and credentials files. Standard library only.

The policy refers to profiles it does not manage (the long-term IAM user keys
that MFA sessions start from) and may leave out what the AWS files already
say (`mfa_serial`, `region`). This module answers those questions and nothing
more: writing the credentials file is the safe writer's job.

Both files are read leniently, as the AWS CLI reads them: a missing file is
empty, and a file that cannot be read or parsed is empty plus a note that
`credd check` shows. Secret values are never kept: for each section only the
names of its keys and the values of a few non-secret keys survive loading.
"""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from credd.paths import aws_config_path

# The only values kept from either file; everything else (keys, tokens) is
# reduced to the presence of its key name.
_KEPT_VALUES = frozenset({"mfa_serial", "region", "role_arn", "source_profile"})

_KEY_ID = "aws_access_key_id"
_SECRET = "aws_secret_access_key"
# botocore reads either name for the token; both mean "temporary credentials".
_TOKENS = frozenset({"aws_session_token", "aws_security_token"})


@dataclass(frozen=True)
class AwsSection:
    """What credd keeps of one profile section: key names, and non-secret values."""

    keys: frozenset[str]
    values: Mapping[str, str]

    def get(self, key: str) -> str | None:
        """The value of a non-secret key (`mfa_serial`, `region`, ...), or None."""
        return self.values.get(key)

    def has_long_term_keys(self) -> bool:
        """An access key id and a secret, and no session token beside them."""
        return _KEY_ID in self.keys and _SECRET in self.keys and not (self.keys & _TOKENS)


def _empty_sections() -> Mapping[str, AwsSection]:
    return MappingProxyType({})


def _no_keyring(name: str) -> bool:
    return False


@dataclass(frozen=True)
class AwsFiles:
    """The profiles of the AWS config file and of the credentials file, secrets left out.

    `config` maps profile names (`[default]`, `[profile NAME]`) to sections;
    `credentials` maps section names (`[NAME]`) to sections. `notes` says
    which file could not be read or parsed. `in_keyring(name)` says whether the
    OS keyring holds (or may hold: it is locked) long-term keys for a profile; it
    is asked only about profiles whose keys the files do not hold, so the keyring
    is looked at only where a key may live there.
    """

    config_path: Path
    credentials_path: Path
    config: Mapping[str, AwsSection] = field(default_factory=_empty_sections)
    credentials: Mapping[str, AwsSection] = field(default_factory=_empty_sections)
    notes: tuple[str, ...] = ()
    in_keyring: Callable[[str], bool] = field(default=_no_keyring, compare=False)

    @classmethod
    def load(
        cls,
        credentials_file: Path,
        env: Mapping[str, str],
        in_keyring: Callable[[str], bool] = _no_keyring,
    ) -> AwsFiles:
        """Read the credentials file given and the AWS config file (`AWS_CONFIG_FILE`)."""
        config_file = Path(aws_config_path(env))
        notes: list[str] = []
        config_raw = _read_ini(config_file, notes)
        credentials_raw = _read_ini(credentials_file, notes)
        return cls.from_sections(
            config_path=config_file,
            credentials_path=credentials_file,
            config_sections=config_raw,
            credentials_sections=credentials_raw,
            notes=tuple(notes),
            in_keyring=in_keyring,
        )

    @classmethod
    def from_sections(
        cls,
        *,
        config_path: Path,
        credentials_path: Path,
        config_sections: Mapping[str, Mapping[str, str]],
        credentials_sections: Mapping[str, Mapping[str, str]],
        notes: tuple[str, ...] = (),
        in_keyring: Callable[[str], bool] = _no_keyring,
    ) -> AwsFiles:
        """Build from already-parsed INI sections (raw section name -> key -> value)."""
        config: dict[str, AwsSection] = {}
        for section_name, items in config_sections.items():
            profile = config_profile_name(section_name)
            if profile is not None:
                config[profile] = _keep(items)
        credentials = {name: _keep(items) for name, items in credentials_sections.items()}
        return cls(
            config_path=config_path,
            credentials_path=credentials_path,
            config=MappingProxyType(config),
            credentials=MappingProxyType(credentials),
            notes=notes,
            in_keyring=in_keyring,
        )

    def has_profile(self, name: str) -> bool:
        """The profile is in the config file or the credentials file, or has keys in the
        keyring."""
        return name in self.config or name in self.credentials or self.in_keyring(name)

    def mfa_serial_for(self, name: str) -> str | None:
        """The profile's `mfa_serial`: config file first, then the credentials section.

        `aws configure mfa-login` may leave it in either place.
        """
        for sections in (self.config, self.credentials):
            section = sections.get(name)
            if section is not None and section.get("mfa_serial"):
                return section.get("mfa_serial")
        return None

    def region_for(self, name: str) -> str | None:
        """The profile's `region` in the config file, or None."""
        section = self.config.get(name)
        return section.get("region") if section is not None else None

    def has_long_term_keys(self, name: str) -> bool:
        """The profile holds IAM user keys (no session token) that STS can start from.

        The credentials file is asked first, as botocore does; keys written in
        the config file count only when the credentials file has none.
        """
        section = self.credentials.get(name)
        if section is not None and (_KEY_ID in section.keys or _SECRET in section.keys):
            return section.has_long_term_keys()
        section = self.config.get(name)
        if section is not None and section.has_long_term_keys():
            return True
        return self.in_keyring(name)

    def has_temporary_credentials(self, name: str) -> bool:
        """The credentials section holds a session token (another tool's session)."""
        section = self.credentials.get(name)
        return section is not None and bool(section.keys & _TOKENS)


# What shlex treats otherwise than `str.split()`: quotes, escapes, and the ASCII whitespace
# that is not shlex's (` \t\r\n`).
_PLAIN_SPLIT = frozenset("\"'\\\x0b\x0c\x1c\x1d\x1e\x1f")


def config_profile_name(section_name: str) -> str | None:
    """`default` -> `default`, `profile NAME` -> `NAME`; other sections (sso-session) -> None.

    Split like botocore does (shlex), so `[profile "my profile"]` means `my profile`.
    """
    if section_name == "default":
        return "default"
    if not section_name.startswith("profile"):
        return None
    if section_name.isascii() and _PLAIN_SPLIT.isdisjoint(section_name):
        parts = section_name.split()  # what shlex gives here, 50 times faster
    else:
        try:
            parts = shlex.split(section_name)
        except ValueError:
            return None
    if len(parts) == 2 and parts[0] == "profile":
        return parts[1]
    return None


def _keep(items: Mapping[str, str]) -> AwsSection:
    """Reduce a section to its key names and the non-secret values; empty values are absent."""
    present = {key: value.strip() for key, value in items.items() if value and value.strip()}
    kept = {key: value for key, value in present.items() if key in _KEPT_VALUES}
    return AwsSection(keys=frozenset(present), values=MappingProxyType(kept))


def _read_ini(path: Path, notes: list[str]) -> dict[str, dict[str, str]]:
    """Parse an INI file leniently; a missing file is empty, a broken one empty plus a note."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        bad_line = exc.object[: exc.start].count(b"\n") + 1
        notes.append(
            f"{path}:{bad_line}: cannot be read (not UTF-8 text); its profiles are ignored"
        )
        return {}
    except OSError as exc:
        notes.append(f"{path}: cannot be read ({_reason(exc)}); its profiles are ignored")
        return {}
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # configparser's message can quote the offending line, which may hold a
        # secret: keep only the line number.
        line = _error_line(exc)
        where = f"{path}:{line}" if line else str(path)
        notes.append(f"{where}: cannot be parsed ({type(exc).__name__}); its profiles are ignored")
        return {}
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _error_line(exc: configparser.Error) -> int | None:
    """The first line number a configparser error points at, if any."""
    errors = getattr(exc, "errors", None)
    if errors:
        return int(errors[0][0])
    line = getattr(exc, "lineno", None)
    return line if isinstance(line, int) else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
