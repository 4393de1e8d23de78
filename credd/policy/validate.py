"""The policy's own rules, checked on the YAML document: pure, no I/O.

Unknown keys, wrong types, out-of-range durations, malformed ARNs, names that
cannot be a credentials-file section, commands written as shell strings, an
entry without `source_profile` and a cycle of source profiles are problems,
every one collected (never only the first), each naming its place
(`profiles.prod-admin.duration`). What depends on the AWS files (whether a
source exists, holds long-term keys, names a device or a region) is
`credd.policy.resolve`'s.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from credd.durations import format_duration, parse_duration
from credd.paths import credentials_path
from credd.policy.values import Problem

T = TypeVar("T")

# STS's own limits (SPEC.md "Known traps").
SESSION_MIN, SESSION_MAX, SESSION_DEFAULT = 900, 129_600, 43_200  # GetSessionToken
ROLE_MIN, ROLE_MAX, ROLE_DEFAULT = 900, 43_200, 3_600  # AssumeRole
ROLE_CHAINED_MAX = 3_600  # AssumeRole called with session credentials
POLICY_VERSION = 1

TOP_KEYS = ("version", "defaults", "credentials_file", "profiles", "endpoint_port")
DEFAULT_KEYS = ("duration", "refresh_before", "region", "code_command", "notify", "rotate_every")
PROFILE_KEYS = (
    "source_profile",
    "mfa_serial",
    "role_arn",
    "role_session_name",
    "external_id",
    "duration",
    "refresh_before",
    "region",
    "code_command",
    "notify",
    "rotate_every",
)
# A long-term key rotated more often than this is a typo (`90m` for `90d`), not a policy.
ROTATE_EVERY_MIN = 3_600
NOTIFY_PLACEHOLDERS = ("profile", "mfa_serial", "message")

# ASCII classes throughout: `\w` and `\d` would let non-ASCII letters and digits in.
_NAME_CHARS = "A-Za-z0-9_+=,.@-"
_MFA_ARN = re.compile(
    rf"arn:aws[-a-z]*:iam::[0-9]{{12}}:mfa/(?:[{_NAME_CHARS}]+/)*[{_NAME_CHARS}]+"
)
_U2F_ARN = re.compile(r"arn:aws[-a-z]*:iam::[0-9]{12}:u2f/.*", re.DOTALL)
# Hardware TOTP tokens registered before ARNs were issued for them (Gemalto "GAHT12345678").
_HARDWARE_SERIAL = re.compile(r"[A-Z0-9]{9,256}")
ROLE_ARN = re.compile(rf"arn:aws[-a-z]*:iam::[0-9]{{12}}:role/(?:[!-~]*/)?[{_NAME_CHARS}]{{1,64}}")
_ROLE_SESSION_NAME = re.compile(rf"[{_NAME_CHARS}]{{2,64}}")
_NOT_SESSION_NAME_CHAR = re.compile(rf"[^{_NAME_CHARS}]")
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9_+=,.@:/-]{2,1224}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

MFA_EXAMPLE = "arn:aws:iam::123456789012:mfa/MFADeviceName"
_ROLE_EXAMPLE = "arn:aws:iam::123456789012:role/Admin"


@dataclass(frozen=True)
class Defaults:
    """The policy's `defaults`, each None when absent or invalid."""

    duration: int | None = None
    refresh_before: int | None = None
    region: str | None = None
    code_command: tuple[str, ...] | None = None
    notify: tuple[str, ...] | None = None
    rotate_every: int | None = None


@dataclass(frozen=True)
class Entry:
    """One profile entry as written, each field None when absent or invalid."""

    name: str
    is_role: bool
    source_profile: str | None = None
    mfa_serial: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None
    external_id: str | None = field(default=None, repr=False)  # semi-secret: never shown
    duration: int | None = None
    refresh_before: int | None = None
    region: str | None = None
    code_command: tuple[str, ...] | None = None
    notify: tuple[str, ...] | None = None
    rotate_every: int | None = None
    rejected: frozenset[str] = frozenset()  # keys written with a value already reported

    @property
    def place(self) -> str:
        """`profiles.<name>`, where its problems are."""
        return f"profiles.{self.name}"


@dataclass(frozen=True)
class Checked:
    """The document after the policy's own rules: what resolving needs, and the problems."""

    credentials_file: Path
    defaults: Defaults
    entries: Mapping[str, Entry]  # every entry that is a mapping, in file order
    endpoint_port: int  # the local credentials endpoint's port; 0: chosen by the system
    on_cycles: frozenset[str]  # entries on or above a cycle of source profiles
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]


def validate(document: object, *, path: Path, env: Mapping[str, str]) -> Checked:
    """Check `document` (the policy's YAML) against the policy's rules; never raises.

    `path` places a relative `credentials_file`; `env` gives HOME and
    AWS_SHARED_CREDENTIALS_FILE.
    """
    return _Validator(path=path, env=env).check(document)


def section_name_problem(name: str) -> str | None:
    """Why `name` cannot be a `[NAME]` section of the credentials file, if it cannot."""
    if not name:
        return "it is empty"
    if name != name.strip():
        return "it starts or ends with a space"
    if "[" in name or "]" in name:
        return "it contains [ or ]"
    if not name.isprintable():
        return "it contains a line break or control character"
    return None


def mfa_serial_problem(serial: str) -> str | None:
    """Why STS would not take `serial` as a TOTP device, if it would not."""
    if _MFA_ARN.fullmatch(serial) or _HARDWARE_SERIAL.fullmatch(serial):
        return None
    if _U2F_ARN.fullmatch(serial):
        return (
            f"{show(serial)} is a U2F security key or passkey; STS takes codes only from"
            " a virtual or hardware TOTP device"
        )
    return (
        f"{show(serial)} is not an MFA device ARN such as {MFA_EXAMPLE}"
        " (or a hardware token's serial number)"
    )


def default_session_name(profile: str) -> str:
    """`credd-<profile>`, with the characters AWS refuses in a session name replaced, cut to 64."""
    return _NOT_SESSION_NAME_CHAR.sub("-", f"credd-{profile}")[:64]


def range_message(seconds: int, low: int, high: int, what: str) -> str:
    """`10m is out of range for an MFA session: GetSessionToken allows 15m to 36h`."""
    api = "GetSessionToken" if what == "an MFA session" else "AssumeRole"
    return (
        f"{format_duration(seconds)} is out of range for {what}:"
        f" {api} allows {format_duration(low)} to {format_duration(high)}"
    )


def show(value: object) -> str:
    """A scalar quoted (cut short), a container only named: its repr could be huge."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "...")
    return _kind_of(value)


def _kind_of(value: object) -> str:
    """A value's YAML type in words, for messages that must not quote it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _expand_user(text: str, env: Mapping[str, str]) -> str:
    """`~` and `~/...` from the HOME given (tests and the daemon pass their own env)."""
    home = env.get("HOME")
    if home and (text == "~" or text.startswith("~/")):
        return home + text[1:]
    return os.path.expanduser(text)


class _Validator:
    """Collects every problem of one document, each stamped with the profile it is about."""

    def __init__(self, *, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.profile: str | None = None  # the entry being checked, if any

    def error(self, place: str, message: str) -> None:
        self.errors.append(Problem(place, message, self.profile))

    def warn(self, place: str, message: str) -> None:
        self.warnings.append(Problem(place, message, self.profile))

    def check(self, document: object) -> Checked:
        credentials_file = Path(credentials_path(self.env))
        defaults = Defaults()
        endpoint_port = 0
        entries: dict[str, Entry] = {}
        on_cycles: set[str] = set()
        if document is None:
            self.error("top level", "the policy is empty; write `version: 1` and `profiles:`")
        elif not isinstance(document, dict):
            self.error(
                "top level",
                f"must be a mapping of {', '.join(TOP_KEYS)}, not {_kind_of(document)}",
            )
        else:
            self.check_keys(document, TOP_KEYS, prefix="")
            self.check_version(document)
            credentials_file = self.credentials_file(document)
            endpoint_port = self.endpoint_port(document.get("endpoint_port", 0))
            defaults = self.defaults(document.get("defaults"))
            entries = self.entries(document)
            on_cycles = self.check_graph(entries)
        return Checked(
            credentials_file=credentials_file,
            defaults=defaults,
            entries=entries,
            endpoint_port=endpoint_port,
            on_cycles=frozenset(on_cycles),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
        )

    # -- the document ---------------------------------------------------------

    def check_keys(
        self, mapping: dict[object, object], allowed: tuple[str, ...], prefix: str
    ) -> None:
        for key in mapping:
            if not isinstance(key, str):
                self.error(prefix.rstrip(".") or "top level", f"key {show(key)} is not a name")
            elif key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                self.error(
                    f"{prefix}{key}",
                    f"unknown key; {suggestion}expected one of {', '.join(allowed)}",
                )

    def check_version(self, document: dict[object, object]) -> None:
        if "version" not in document:
            self.error("version", "missing; write `version: 1` at the top")
            return
        version = document["version"]
        if isinstance(version, bool) or version != POLICY_VERSION:
            self.error("version", f"must be {POLICY_VERSION}, not {show(version)}")

    def credentials_file(self, document: dict[object, object]) -> Path:
        if "credentials_file" in document:
            value = document["credentials_file"]
            if isinstance(value, str) and value.strip():
                expanded = Path(_expand_user(value, self.env))
                return expanded if expanded.is_absolute() else self.path.parent / expanded
            self.error("credentials_file", f"must be a path (a string), not {show(value)}")
        return Path(credentials_path(self.env))

    def endpoint_port(self, value: object) -> int:
        # Only the port: the endpoint listens on 127.0.0.1 and nothing can make it listen wider.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            return value
        self.error(
            "endpoint_port",
            f"must be a TCP port from 1 to 65535 (or 0: a free one), not {show(value)}",
        )
        return 0

    def defaults(self, value: object) -> Defaults:
        if value is None:
            return Defaults()
        if not isinstance(value, dict):
            self.error("defaults", f"must be a mapping, not {show(value)}")
            return Defaults()
        self.check_keys(value, DEFAULT_KEYS, prefix="defaults.")
        duration = refresh_before = None
        region = None
        code_command = notify = None
        rotate_every = None
        if "rotate_every" in value:
            rotate_every = self.rotate_every(value["rotate_every"], "defaults.rotate_every")
        if "duration" in value:
            duration = self.duration(
                value["duration"], "defaults.duration", SESSION_MIN, SESSION_MAX, "an MFA session"
            )
        if "refresh_before" in value:
            refresh_before = self.seconds(value["refresh_before"], "defaults.refresh_before")
        if "region" in value:
            region = self.region(value["region"], "defaults.region")
        if "code_command" in value:
            code_command = self.argv(value["code_command"], "defaults.code_command")
        if "notify" in value:
            notify = self.argv(value["notify"], "defaults.notify", notify=True)
        return Defaults(duration, refresh_before, region, code_command, notify, rotate_every)

    def entries(self, document: dict[object, object]) -> dict[str, Entry]:
        if "profiles" not in document:
            self.error("profiles", "missing; name at least one profile to keep fresh")
            return {}
        profiles = document["profiles"]
        if not isinstance(profiles, dict) or not profiles:
            what = "empty" if profiles in (None, {}) else f"not a mapping but {show(profiles)}"
            self.error("profiles", f"{what}; name at least one profile to keep fresh")
            return {}
        entries: dict[str, Entry] = {}
        for name, body in profiles.items():
            if not isinstance(name, str):
                self.error(f"profiles.{name}", "a profile name must be a string (quote it)")
                continue
            self.profile = name
            try:
                entry = self.entry(name, body)
            finally:
                self.profile = None
            if entry is not None:
                entries[name] = entry
        return entries

    # -- one entry, field by field ---------------------------------------------

    def entry(self, name: str, body: object) -> Entry | None:
        place = f"profiles.{name}"
        name_problem = section_name_problem(name)
        if name_problem:
            self.error(place, f"not usable as a credentials file section: {name_problem}")
        if not isinstance(body, dict):
            self.error(
                place,
                f"must be a mapping with source_profile and mfa_serial or role_arn,"
                f" not {show(body)}",
            )
            return None
        self.check_keys(body, PROFILE_KEYS, prefix=f"{place}.")
        # A misspelt role_arn is reported as an unknown key; taking the entry for
        # an MFA session as well would pile misleading errors on top of it.
        misspelt_role = any(
            isinstance(key, str)
            and key not in PROFILE_KEYS
            and difflib.get_close_matches(key, ["role_arn"], n=1)
            for key in body
        )
        is_role = "role_arn" in body or misspelt_role
        source_profile = None
        if "source_profile" not in body:
            self.error(
                f"{place}.source_profile",
                "missing; name the profile whose credentials this one starts from",
            )
        else:
            source_profile = self.profile_name(body["source_profile"], f"{place}.source_profile")
            if source_profile == name:
                self.error(f"{place}.source_profile", "a profile cannot be its own source")

        def given(key: str, check: Callable[[object, str], T]) -> T | None:
            return check(body[key], f"{place}.{key}") if key in body else None

        mfa_serial = given("mfa_serial", self.mfa_serial)
        role_arn = given("role_arn", self.role_arn)
        for key in ("role_session_name", "external_id"):
            if key in body and not is_role:
                self.error(f"{place}.{key}", "only a role (with role_arn) takes it")
        role_session_name = given("role_session_name", self.session_name)
        external_id = given("external_id", self.external_id)
        duration = given("duration", self.seconds)
        refresh_before = given("refresh_before", self.seconds)
        region = given("region", self.region)
        code_command = given("code_command", self.argv)
        notify = given("notify", lambda value, at: self.argv(value, at, notify=True))
        rotate_every = given("rotate_every", self.rotate_every)
        parsed = {
            "source_profile": source_profile,
            "mfa_serial": mfa_serial,
            "role_arn": role_arn,
            "role_session_name": role_session_name,
            "external_id": external_id,
            "duration": duration,
            "refresh_before": refresh_before,
            "region": region,
            "code_command": code_command,
            "notify": notify,
            "rotate_every": rotate_every,
        }
        return Entry(
            name=name,
            is_role=is_role,
            source_profile=source_profile,
            mfa_serial=mfa_serial,
            role_arn=role_arn,
            role_session_name=role_session_name,
            external_id=external_id,
            duration=duration,
            refresh_before=refresh_before,
            region=region,
            code_command=code_command,
            notify=notify,
            rotate_every=rotate_every,
            rejected=frozenset(k for k in PROFILE_KEYS if k in body and parsed[k] is None),
        )

    def string(self, value: object, place: str) -> str | None:
        if value is None:
            self.error(place, "has no value")
            return None
        if not isinstance(value, str):
            self.error(place, f"must be a string, not {show(value)} (quote it)")
            return None
        return value

    def profile_name(self, value: object, place: str) -> str | None:
        name = self.string(value, place)
        if name is None:
            return None
        problem = section_name_problem(name)
        if problem:
            self.error(place, f"{show(name)} is not a profile name: {problem}")
            return None
        return name

    def mfa_serial(self, value: object, place: str) -> str | None:
        serial = self.string(value, place)
        if serial is None:
            return None
        problem = mfa_serial_problem(serial)
        if problem:
            self.error(place, problem)
            return None
        return serial

    def role_arn(self, value: object, place: str) -> str | None:
        arn = self.string(value, place)
        if arn is None:
            return None
        if not ROLE_ARN.fullmatch(arn):
            self.error(place, f"{show(arn)} is not a role ARN such as {_ROLE_EXAMPLE}")
            return None
        return arn

    def session_name(self, value: object, place: str) -> str | None:
        name = self.string(value, place)
        if name is None:
            return None
        if not _ROLE_SESSION_NAME.fullmatch(name):
            self.error(
                place,
                f"{show(name)} must be 2 to 64 characters of letters, digits and +=,.@_-",
            )
            return None
        return name

    def external_id(self, value: object, place: str) -> str | None:
        # The value is never quoted back: an external id is a shared secret of sorts.
        if value is None:
            self.error(place, "has no value")
            return None
        if not isinstance(value, str):
            self.error(place, f"must be a string, not {_kind_of(value)} (quote it)")
            return None
        if not _EXTERNAL_ID.fullmatch(value):
            self.error(
                place,
                f"must be 2 to 1224 characters of letters, digits and +=,.@:/_-"
                f" (it has {len(value)} characters; value not shown)",
            )
            return None
        return value

    def seconds(self, value: object, place: str) -> int | None:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.error(place, str(exc))
            return None

    def rotate_every(self, value: object, place: str) -> int | None:
        seconds = self.seconds(value, place)
        if seconds is not None and seconds < ROTATE_EVERY_MIN:
            self.error(
                place,
                f"{format_duration(seconds)} is too often to rotate a long-term key;"
                " write at least 1h (90d is usual)",
            )
            return None
        return seconds

    def duration(self, value: object, place: str, low: int, high: int, what: str) -> int | None:
        seconds = self.seconds(value, place)
        if seconds is not None and not low <= seconds <= high:
            self.error(place, range_message(seconds, low, high, what))
            return None
        return seconds

    def region(self, value: object, place: str) -> str | None:
        region = self.string(value, place)
        if region is None:
            return None
        if not _REGION.fullmatch(region):
            self.error(place, f"{show(region)} is not an AWS region such as us-east-1")
            return None
        return region

    def argv(self, value: object, place: str, *, notify: bool = False) -> tuple[str, ...] | None:
        example = "[notify-send, credd, '{message}']" if notify else "[ykman, oath, accounts, code]"
        if isinstance(value, str):
            self.error(place, f"must be an argv list such as {example}, never a shell string")
            return None
        if not isinstance(value, list) or not value:
            what = "an empty list" if value == [] else show(value)
            self.error(place, f"must be a non-empty argv list such as {example}, not {what}")
            return None
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        for i in bad:
            self.error(f"{place}[{i}]", f"must be a string, not {show(value[i])} (quote it)")
        if bad:
            return None
        if not value[0]:
            self.error(f"{place}[0]", "the program to run is empty")
            return None
        argv = tuple(str(item) for item in value)
        if notify:
            for i, arg in enumerate(argv):
                for placeholder in _PLACEHOLDER.findall(arg):
                    if placeholder not in NOTIFY_PLACEHOLDERS:
                        known = ", ".join(f"{{{p}}}" for p in NOTIFY_PLACEHOLDERS)
                        self.warn(
                            f"{place}[{i}]",
                            f"{{{placeholder}}} is not filled in (credd fills {known})",
                        )
        return argv

    # -- across entries --------------------------------------------------------

    def check_graph(self, entries: Mapping[str, Entry]) -> set[str]:
        """Report cycles of source profiles; return every entry on or above one."""
        broken: set[str] = set()
        done: set[str] = set()
        reported: set[frozenset[str]] = set()
        for start in entries:
            walk: list[str] = []
            current: str | None = start
            while current is not None and current in entries and current not in done:
                if current in walk:
                    cycle = walk[walk.index(current) :]
                    broken.update(walk)
                    if len(cycle) > 1 and frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        self.report_cycle(cycle, list(entries))
                    break
                walk.append(current)
                current = entries[current].source_profile
            else:
                if current in broken:
                    broken.update(walk)
            done.update(walk)
        return broken

    def report_cycle(self, cycle: list[str], file_order: list[str]) -> None:
        first = min(cycle, key=file_order.index)
        turn = cycle.index(first)
        ordered = cycle[turn:] + cycle[:turn]
        self.errors.append(
            Problem(
                f"profiles.{first}.source_profile",
                f"cycle of source profiles: {' -> '.join([*ordered, first])};"
                " one of them must start from a profile with long-term keys",
                first,
            )
        )
