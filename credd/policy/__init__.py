"""The policy file: which profiles credd keeps fresh, and how each is made.

The only home of PyYAML in credd. Parsing is pure given the AWS files
(`parse_policy`); `load_policy` is the thin edge that reads the file.

What is checked (SPEC.md "The policy file"): the document is read with
`yaml.safe_load` only; unknown keys, wrong types, out-of-range durations,
malformed ARNs, a cycle of source profiles and an entry without
`source_profile` are errors, all collected and raised together in one
`PolicyError`, each naming its place (`profiles.prod-admin.duration`) and,
for YAML syntax errors, the line and column. A `source_profile` found
neither in the policy nor in the AWS files is not an error of the policy
but a *reference problem* of that one profile (`Policy.problems`): `credd
check` reports it and exits 2, a running daemon puts only that profile in
`error`.

How each setting is chosen when the profile leaves it out:

- `duration`: `defaults.duration` for MFA sessions, else 12h; roles default
  to 1h (AWS's default and a role's default maximum) and do not inherit
  `defaults.duration`, since asking more than the role allows fails.
  A role chained on a session (its source is managed by credd, or holds
  temporary credentials) is capped to 1h with a warning.
- `refresh_before`: `defaults.refresh_before`, else 15m.
- `mfa_serial` (MFA sessions only): the source profile's `mfa_serial` in
  the AWS config file, else in its credentials section.
- `region`: the profile's `region`, then `defaults.region`, then the
  `AWS_REGION` and `AWS_DEFAULT_REGION` environment variables, then the
  `region` of the root source profile in the AWS config file (the chain is
  followed to the profile that holds long-term keys), then the partition's
  usual STS region (`us-east-1`; `cn-north-1` and `us-gov-west-1` for ARNs
  in the China and GovCloud partitions).
- `role_session_name`: `credd-<profile name>`, with characters AWS refuses
  replaced by `-`, cut to 64.
- `code_command`, `notify`: `defaults`, else none.
- `credentials_file`: the policy's key (`~` expanded; a relative path is
  taken from the policy file's directory), then `AWS_SHARED_CREDENTIALS_FILE`,
  then `~/.aws/credentials`.
- `endpoint_port`: the local credentials endpoint's port on 127.0.0.1; 0 (the
  default) lets the system choose a free one when the first token is asked for.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from credd.durations import format_duration, parse_duration
from credd.errors import PolicyError
from credd.files.lookup import AwsFiles
from credd.paths import credentials_path
from credd.states import Kind

# STS's own limits (SPEC.md "Known traps").
SESSION_MIN, SESSION_MAX, SESSION_DEFAULT = 900, 129_600, 43_200  # GetSessionToken
ROLE_MIN, ROLE_MAX, ROLE_DEFAULT = 900, 43_200, 3_600  # AssumeRole
ROLE_CHAINED_MAX = 3_600  # AssumeRole called with session credentials
REFRESH_BEFORE_DEFAULT = 900
DEFAULT_REGION = "us-east-1"
POLICY_VERSION = 1
# A policy is a few kilobytes; refusing a huge file keeps a mistake from eating memory.
MAX_POLICY_BYTES = 1 << 20
# PyYAML's safe loader on libyaml's parser, where PyYAML was built with it.
_FAST_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TOP_KEYS = ("version", "defaults", "credentials_file", "profiles", "endpoint_port")
DEFAULT_KEYS = ("duration", "refresh_before", "region", "code_command", "notify")
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
)
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
_PARTITION = re.compile(r"arn:(aws[-a-z]*):")
_PARTITION_REGION = {"aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}

_MFA_EXAMPLE = "arn:aws:iam::123456789012:mfa/MFADeviceName"
_ROLE_EXAMPLE = "arn:aws:iam::123456789012:role/Admin"


@dataclass(frozen=True)
class Profile:
    """One profile credd keeps fresh, with every setting resolved."""

    name: str
    kind: Kind
    source_profile: str
    mfa_serial: str | None
    role_arn: str | None
    role_session_name: str | None
    external_id: str | None = field(repr=False)  # semi-secret: never shown
    duration: int  # seconds asked of STS, after caps
    requested_duration: int  # as written (or default) before caps
    refresh_before: int
    region: str
    code_command: tuple[str, ...] | None
    notify: tuple[str, ...] | None
    source_is_managed: bool  # source_profile is itself in the policy (a chain)

    @property
    def needs_code(self) -> bool:
        """A TOTP code is needed to renew it: an MFA session, or a role with its own device."""
        return self.kind is Kind.MFA_SESSION or self.mfa_serial is not None


@dataclass(frozen=True)
class Policy:
    """A valid policy: its profiles in refresh order, and what `credd check` should say."""

    path: Path
    credentials_file: Path
    profiles: tuple[Profile, ...]  # every source before its dependents, otherwise file order
    warnings: tuple[str, ...] = ()
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    endpoint_port: int = 0  # the local credentials endpoint's port; 0: chosen by the system

    def get(self, name: str) -> Profile | None:
        """The profile called `name`, or None."""
        return next((p for p in self.profiles if p.name == name), None)

    def dependents(self, name: str) -> tuple[Profile, ...]:
        """The profiles whose source is `name` (direct dependents only), in refresh order."""
        return self._dependents.get(name, ())

    @cached_property
    def _dependents(self) -> Mapping[str, tuple[Profile, ...]]:
        # Asked after every renewal: a scan of every profile each time made a fan-out over
        # 1,000 profiles O(n²) (bench/RESULTS.md #4).
        found: dict[str, list[Profile]] = {}
        for profile in self.profiles:
            found.setdefault(profile.source_profile, []).append(profile)
        return MappingProxyType({source: tuple(group) for source, group in found.items()})


def load_policy(path: Path, env: Mapping[str, str] = os.environ) -> Policy:
    """Read and parse the policy at `path`; a missing or unreadable file is a PolicyError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError(
            str(path), ["the file does not exist; run `credd init` or pass --policy"]
        ) from None
    except IsADirectoryError:
        raise PolicyError(str(path), ["is a directory, not a policy file"]) from None
    except OSError as exc:
        raise PolicyError(
            str(path), [f"cannot be read: {exc.strerror or type(exc).__name__}"]
        ) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(str(path), [f"is larger than {MAX_POLICY_BYTES} bytes"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            str(path), [f"is not UTF-8 text (byte {exc.start + 1} is not valid)"]
        ) from None
    return parse_policy(text, path=path, env=env)


def parse_policy(
    text: str, *, path: Path, aws: AwsFiles | None = None, env: Mapping[str, str]
) -> Policy:
    """Validate the policy `text` and resolve every profile's settings.

    `aws` is what the AWS files say; when None they are read from the policy's
    credentials file and `AWS_CONFIG_FILE` (the only I/O here). Raises one
    PolicyError holding every problem found.
    """
    return _Parser(text=text, path=path, aws=aws, env=env).parse()


def format_summary(policy: Policy) -> str:
    """What `credd check` prints: each profile's settings, then warnings and problems."""
    lines = [
        f"policy:           {policy.path}",
        f"credentials file: {policy.credentials_file}",
        f"{len(policy.profiles)} profile{'s' if len(policy.profiles) != 1 else ''}"
        " (in refresh order):",
    ]
    for profile in policy.profiles:
        lines.append("")
        lines.append(f"{profile.name} ({profile.kind})")
        lines.extend(f"  {label:<13}{value}" for label, value in _summary_rows(profile))
    if policy.warnings:
        lines.append("")
        lines.append("warnings:")
        lines.extend(f"  {warning}" for warning in policy.warnings)
    if policy.problems:
        lines.append("")
        lines.append("problems:")
        lines.extend(f"  {problem}" for problem in policy.problems.values())
    return "\n".join(lines) + "\n"


def _summary_rows(profile: Profile) -> Iterable[tuple[str, str]]:
    if profile.source_is_managed:
        source = f"{profile.source_profile} (managed here: renewed right after it)"
    else:
        source = f"{profile.source_profile} (AWS files)"
    yield "source", source
    if profile.role_arn is not None:
        yield "role", profile.role_arn
        yield "session name", profile.role_session_name or ""
        if profile.external_id is not None:
            yield "external id", "set"
    if profile.mfa_serial is not None:
        yield "device", profile.mfa_serial
    duration = format_duration(profile.duration)
    if profile.duration < profile.requested_duration:
        duration += (
            f" (capped from {format_duration(profile.requested_duration)}:"
            " AWS limits role chaining to 1 hour)"
        )
    yield "duration", duration
    yield "refresh", f"{format_duration(profile.refresh_before)} before expiry"
    yield "region", profile.region
    if profile.needs_code:
        how = shlex.join(profile.code_command) if profile.code_command else None
        yield "code", how or "asked over the socket (credctl token, credctl prompt)"
    if profile.notify is not None:
        yield "notify", shlex.join(profile.notify)


@dataclass
class _Defaults:
    duration: int | None = None
    refresh_before: int | None = None
    region: str | None = None
    code_command: tuple[str, ...] | None = None
    notify: tuple[str, ...] | None = None


@dataclass
class _Entry:
    """One profile entry as written, each field None when absent or invalid."""

    name: str
    is_role: bool
    source_profile: str | None = None
    mfa_serial: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None
    external_id: str | None = None
    duration: int | None = None
    refresh_before: int | None = None
    region: str | None = None
    code_command: tuple[str, ...] | None = None
    notify: tuple[str, ...] | None = None
    rejected: frozenset[str] = frozenset()  # keys written with a value already reported

    @property
    def place(self) -> str:
        return f"profiles.{self.name}"


class _Parser:
    """Collects every problem of one policy text; `parse` raises them together."""

    def __init__(
        self, *, text: str, path: Path, aws: AwsFiles | None, env: Mapping[str, str]
    ) -> None:
        self.text = text
        self.path = path
        self.aws_given = aws
        self.env = env
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.problems: dict[str, str] = {}
        self.file_order: dict[str, int] = {}

    def error(self, place: str, message: str) -> None:
        self.errors.append(f"{place}: {message}")

    def fail(self) -> PolicyError:
        """Every problem, grouped as the file reads: top-level keys, then each profile in turn."""
        found = [*self.errors, *self.problems.values()]
        return PolicyError(str(self.path), sorted(found, key=self.rank))

    def rank(self, problem: str) -> int:
        """0 for top-level places, else 1 + the index of the profile it names (longest match)."""
        best, rank = -1, 0
        for name, index in self.file_order.items():
            prefix = f"profiles.{name}"
            if (
                problem.startswith(prefix)
                and problem[len(prefix) : len(prefix) + 1] in (".", "[", ":", " ")
                and len(name) > best
            ):
                best, rank = len(name), index + 1
        return rank

    # -- the document ---------------------------------------------------------

    def parse(self) -> Policy:
        document = self.load_yaml()
        if self.errors:
            raise self.fail()
        if document is None:
            self.error("top level", "the policy is empty; write `version: 1` and `profiles:`")
            raise self.fail()
        if not isinstance(document, dict):
            self.error(
                "top level",
                f"must be a mapping of {', '.join(TOP_KEYS)}, not {_kind_of(document)}",
            )
            raise self.fail()
        self.check_keys(document, TOP_KEYS, prefix="")
        self.check_version(document)
        credentials_file = self.credentials_file(document)
        endpoint_port = self.endpoint_port(document.get("endpoint_port", 0))
        defaults = self.defaults(document.get("defaults"))
        entries = self.entries(document)
        aws = self.aws_given or AwsFiles.load(credentials_file, self.env)
        self.warnings.extend(aws.notes)
        broken = self.check_graph(entries)
        profiles = [
            profile
            for entry in entries.values()
            if entry.name not in broken
            and (profile := self.resolve(entry, entries, defaults, aws)) is not None
        ]
        if self.errors:
            raise self.fail()
        return Policy(
            path=self.path,
            credentials_file=credentials_file,
            profiles=_refresh_order(profiles),
            warnings=tuple(self.warnings),
            problems=MappingProxyType(dict(self.problems)),
            endpoint_port=endpoint_port,
        )

    def load_yaml(self) -> object:
        """The document, composed once; on any trouble, PyYAML's own parser says what and where.

        libyaml parses a 1,000-profile policy in a tenth of the time (it was a third of
        `credd run`'s time to READY, bench/RESULTS.md #6); the same safe constructor
        builds the values. It caps nesting at 1,000 levels itself, so it cannot run
        out of stack. Its error messages differ from PyYAML's, so a document it refuses
        is read again the slow way for the messages people and tests rely on.
        """
        try:
            loader = _FAST_SAFE_LOADER(self.text)
            try:
                node = loader.get_single_node()
                document = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except (yaml.YAMLError, RecursionError):
            return self.load_yaml_slowly()
        if node is not None:
            self.check_duplicates(node)
        return document

    def load_yaml_slowly(self) -> object:
        try:
            document = yaml.safe_load(self.text)
        except yaml.MarkedYAMLError as exc:
            self.errors.append(_yaml_message(exc))
            return None
        except yaml.YAMLError as exc:
            self.errors.append(f"YAML: {exc}")
            return None
        except RecursionError:
            # PyYAML's composer recurses once per nesting level.
            self.error("top level", "nested too deeply to be a policy")
            return None
        node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        if node is not None:
            self.check_duplicates(node)
        return document

    def check_duplicates(self, node: yaml.Node) -> None:
        """A key written twice: safe_load silently keeps the last, which hides a mistake."""
        seen: set[int] = set()  # aliases share nodes: visit each once (billion laughs)
        stack: list[tuple[yaml.Node, str]] = [(node, "")]
        while stack:
            current, place = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                first_line: dict[str, int] = {}
                for key, value in current.value:
                    label = key.value if isinstance(key, yaml.ScalarNode) else None
                    if isinstance(label, str) and label != "<<":
                        child = f"{place}.{label}" if place else label
                        line = key.start_mark.line + 1
                        if label in first_line:
                            self.error(
                                child,
                                f"written twice (lines {first_line[label]} and {line});"
                                " the later one would silently replace the earlier",
                            )
                        else:
                            first_line[label] = line
                        stack.append((value, child))
            elif isinstance(current, yaml.SequenceNode):
                stack.extend((item, f"{place}[{i}]") for i, item in enumerate(current.value))

    def check_keys(
        self, mapping: dict[object, object], allowed: tuple[str, ...], prefix: str
    ) -> None:
        for key in mapping:
            if not isinstance(key, str):
                self.error(prefix.rstrip(".") or "top level", f"key {_show(key)} is not a name")
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
            self.error("version", f"must be {POLICY_VERSION}, not {_show(version)}")

    def credentials_file(self, document: dict[object, object]) -> Path:
        if "credentials_file" in document:
            value = document["credentials_file"]
            if isinstance(value, str) and value.strip():
                expanded = Path(_expand_user(value, self.env))
                return expanded if expanded.is_absolute() else self.path.parent / expanded
            self.error("credentials_file", f"must be a path (a string), not {_show(value)}")
        return Path(credentials_path(self.env))

    def endpoint_port(self, value: object) -> int:
        # Only the port: the endpoint listens on 127.0.0.1 and nothing can make it listen wider.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            return value
        self.error(
            "endpoint_port",
            f"must be a TCP port from 1 to 65535 (or 0: a free one), not {_show(value)}",
        )
        return 0

    def defaults(self, value: object) -> _Defaults:
        defaults = _Defaults()
        if value is None:
            return defaults
        if not isinstance(value, dict):
            self.error("defaults", f"must be a mapping, not {_show(value)}")
            return defaults
        self.check_keys(value, DEFAULT_KEYS, prefix="defaults.")
        if "duration" in value:
            defaults.duration = self.duration(
                value["duration"], "defaults.duration", SESSION_MIN, SESSION_MAX, "an MFA session"
            )
        if "refresh_before" in value:
            defaults.refresh_before = self.seconds(
                value["refresh_before"], "defaults.refresh_before"
            )
        if "region" in value:
            defaults.region = self.region(value["region"], "defaults.region")
        if "code_command" in value:
            defaults.code_command = self.argv(value["code_command"], "defaults.code_command")
        if "notify" in value:
            defaults.notify = self.argv(value["notify"], "defaults.notify", notify=True)
        return defaults

    def entries(self, document: dict[object, object]) -> dict[str, _Entry]:
        if "profiles" not in document:
            self.error("profiles", "missing; name at least one profile to keep fresh")
            return {}
        profiles = document["profiles"]
        if not isinstance(profiles, dict) or not profiles:
            what = "empty" if profiles in (None, {}) else f"not a mapping but {_show(profiles)}"
            self.error("profiles", f"{what}; name at least one profile to keep fresh")
            return {}
        entries: dict[str, _Entry] = {}
        for name, body in profiles.items():
            if not isinstance(name, str):
                self.error(f"profiles.{name}", "a profile name must be a string (quote it)")
                continue
            entry = self.entry(name, body)
            if entry is not None:
                entries[name] = entry
        return entries

    # -- one entry, field by field ---------------------------------------------

    def entry(self, name: str, body: object) -> _Entry | None:
        place = f"profiles.{name}"
        name_problem = section_name_problem(name)
        if name_problem:
            self.error(place, f"not usable as a credentials file section: {name_problem}")
        if not isinstance(body, dict):
            self.error(
                place,
                f"must be a mapping with source_profile and mfa_serial or role_arn,"
                f" not {_show(body)}",
            )
            return None
        self.check_keys(body, PROFILE_KEYS, prefix=f"{place}.")
        self.file_order.setdefault(name, len(self.file_order))
        # A misspelt role_arn is reported as an unknown key; taking the entry for
        # an MFA session as well would pile misleading errors on top of it.
        misspelt_role = any(
            isinstance(key, str)
            and key not in PROFILE_KEYS
            and difflib.get_close_matches(key, ["role_arn"], n=1)
            for key in body
        )
        entry = _Entry(name=name, is_role="role_arn" in body or misspelt_role)
        if "source_profile" not in body:
            self.error(
                f"{place}.source_profile",
                "missing; name the profile whose credentials this one starts from",
            )
        else:
            entry.source_profile = self.profile_name(
                body["source_profile"], f"{place}.source_profile"
            )
            if entry.source_profile == name:
                self.error(f"{place}.source_profile", "a profile cannot be its own source")
        if "mfa_serial" in body:
            entry.mfa_serial = self.mfa_serial(body["mfa_serial"], f"{place}.mfa_serial")
        if "role_arn" in body:
            entry.role_arn = self.role_arn(body["role_arn"], f"{place}.role_arn")
        for key in ("role_session_name", "external_id"):
            if key in body and not entry.is_role:
                self.error(f"{place}.{key}", "only a role (with role_arn) takes it")
        if "role_session_name" in body:
            entry.role_session_name = self.session_name(
                body["role_session_name"], f"{place}.role_session_name"
            )
        if "external_id" in body:
            entry.external_id = self.external_id(body["external_id"], f"{place}.external_id")
        if "duration" in body:
            entry.duration = self.seconds(body["duration"], f"{place}.duration")
        if "refresh_before" in body:
            entry.refresh_before = self.seconds(body["refresh_before"], f"{place}.refresh_before")
        if "region" in body:
            entry.region = self.region(body["region"], f"{place}.region")
        if "code_command" in body:
            entry.code_command = self.argv(body["code_command"], f"{place}.code_command")
        if "notify" in body:
            entry.notify = self.argv(body["notify"], f"{place}.notify", notify=True)
        entry.rejected = frozenset(
            key for key in PROFILE_KEYS if key in body and getattr(entry, key) is None
        )
        return entry

    def string(self, value: object, place: str) -> str | None:
        if value is None:
            self.error(place, "has no value")
            return None
        if not isinstance(value, str):
            self.error(place, f"must be a string, not {_show(value)} (quote it)")
            return None
        return value

    def profile_name(self, value: object, place: str) -> str | None:
        name = self.string(value, place)
        if name is None:
            return None
        problem = section_name_problem(name)
        if problem:
            self.error(place, f"{_show(name)} is not a profile name: {problem}")
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
            self.error(place, f"{_show(arn)} is not a role ARN such as {_ROLE_EXAMPLE}")
            return None
        return arn

    def session_name(self, value: object, place: str) -> str | None:
        name = self.string(value, place)
        if name is None:
            return None
        if not _ROLE_SESSION_NAME.fullmatch(name):
            self.error(
                place,
                f"{_show(name)} must be 2 to 64 characters of letters, digits and +=,.@_-",
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

    def duration(self, value: object, place: str, low: int, high: int, what: str) -> int | None:
        seconds = self.seconds(value, place)
        if seconds is not None and not low <= seconds <= high:
            self.error(place, _range_message(seconds, low, high, what))
            return None
        return seconds

    def region(self, value: object, place: str) -> str | None:
        region = self.string(value, place)
        if region is None:
            return None
        if not _REGION.fullmatch(region):
            self.error(place, f"{_show(region)} is not an AWS region such as us-east-1")
            return None
        return region

    def argv(self, value: object, place: str, *, notify: bool = False) -> tuple[str, ...] | None:
        example = "[notify-send, credd, '{message}']" if notify else "[ykman, oath, accounts, code]"
        if isinstance(value, str):
            self.error(place, f"must be an argv list such as {example}, never a shell string")
            return None
        if not isinstance(value, list) or not value:
            what = "an empty list" if value == [] else _show(value)
            self.error(place, f"must be a non-empty argv list such as {example}, not {what}")
            return None
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        for i in bad:
            self.error(f"{place}[{i}]", f"must be a string, not {_show(value[i])} (quote it)")
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
                        self.warnings.append(
                            f"{place}[{i}]: {{{placeholder}}} is not filled in"
                            f" (credd fills {known})"
                        )
        return argv

    # -- across entries --------------------------------------------------------

    def check_graph(self, entries: Mapping[str, _Entry]) -> set[str]:
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
        self.error(
            f"profiles.{first}.source_profile",
            f"cycle of source profiles: {' -> '.join([*ordered, first])};"
            " one of them must start from a profile with long-term keys",
        )

    def resolve(
        self,
        entry: _Entry,
        entries: Mapping[str, _Entry],
        defaults: _Defaults,
        aws: AwsFiles,
    ) -> Profile | None:
        """Check what depends on the source and fill every default; None when invalid."""
        place = entry.place
        source = entry.source_profile
        if source is None or source == entry.name:
            return None
        source_is_managed = source in entries
        source_found = source_is_managed or aws.has_profile(source)
        problems: list[str] = []
        if not source_found:
            # A file that could not be parsed hides its profiles: say so, with its line.
            why = "".join(f"; {note}" for note in aws.notes)
            problems.append(
                f"{place}.source_profile: {source!r} is neither in the policy nor in"
                f" {aws.config_path} or {aws.credentials_path}{why}"
            )
        overwritten = aws.credentials.get(entry.name)
        if overwritten is not None and overwritten.has_long_term_keys():
            problems.append(
                f"{place}: {aws.credentials_path} holds long-term keys under [{entry.name}];"
                " credd would overwrite them: rename the profile or move the keys"
            )
        if problems:
            self.problems[entry.name] = "; ".join(problems)

        ok = not entry.rejected and not (entry.is_role and entry.role_arn is None)
        if entry.is_role:
            kind = Kind.ROLE
            mfa_serial = entry.mfa_serial
            if mfa_serial is not None and source_is_managed:
                self.error(
                    f"{place}.mfa_serial",
                    f"not allowed: the source {source!r} is managed by credd,"
                    " so the chain already carries MFA",
                )
                ok = False
            chained = source_is_managed or (source_found and not aws.has_long_term_keys(source))
            requested, duration = self.role_duration(entry, chained, source)
        else:
            kind = Kind.MFA_SESSION
            mfa_serial = self.session_mfa_serial(entry, source, source_is_managed, aws)
            if source_found and mfa_serial is None:
                ok = False
            requested = duration = self.session_duration(entry, defaults)
        if duration is None or requested is None:
            return None

        refresh_before = entry.refresh_before
        refresh_place = f"{place}.refresh_before"
        if refresh_before is None and "refresh_before" not in entry.rejected:
            refresh_before = defaults.refresh_before
            refresh_place = f"{place}.refresh_before (from defaults.refresh_before)"
        if refresh_before is None:
            refresh_before = REFRESH_BEFORE_DEFAULT
            refresh_place = f"{place}.refresh_before (default 15m)"
        if refresh_before >= duration:
            self.errors.append(
                f"{refresh_place}: {format_duration(refresh_before)} must be less than"
                f" the duration {format_duration(duration)}, or credd would renew without end"
            )
            ok = False
        if not ok:
            return None
        return Profile(
            name=entry.name,
            kind=kind,
            source_profile=source,
            mfa_serial=mfa_serial,
            role_arn=entry.role_arn,
            role_session_name=(entry.role_session_name or _default_session_name(entry.name))
            if entry.is_role
            else None,
            external_id=entry.external_id,
            duration=duration,
            requested_duration=requested,
            refresh_before=refresh_before,
            region=self.resolve_region(entry, entries, defaults, aws, mfa_serial),
            code_command=entry.code_command or defaults.code_command,
            notify=entry.notify or defaults.notify,
            source_is_managed=source_is_managed,
        )

    def session_mfa_serial(
        self, entry: _Entry, source: str, source_is_managed: bool, aws: AwsFiles
    ) -> str | None:
        place = entry.place
        if source_is_managed:
            self.error(
                f"{place}.source_profile",
                f"{source!r} is managed by credd, but GetSessionToken needs an IAM user's"
                " long-term keys: an MFA session cannot start from another session or role",
            )
            return entry.mfa_serial
        if aws.has_profile(source) and not aws.has_long_term_keys(source):
            self.warnings.append(
                f"{place}.source_profile: {source!r} holds no long-term keys in the AWS files;"
                " GetSessionToken works only with an IAM user's access keys"
            )
        if entry.mfa_serial is not None or "mfa_serial" in entry.rejected:
            return entry.mfa_serial
        if not aws.has_profile(source):
            return None  # the missing source is the one reference problem to report
        inherited = aws.mfa_serial_for(source)
        if inherited is None:
            self.error(
                f"{place}.mfa_serial",
                f"missing, and the source profile {source!r} names none in"
                f" {aws.config_path} or {aws.credentials_path}; add mfa_serial: {_MFA_EXAMPLE}",
            )
            return None
        problem = mfa_serial_problem(inherited)
        if problem:
            self.error(
                f"{place}.mfa_serial",
                f"missing, and the mfa_serial of profile {source!r} in the AWS files"
                f" is unusable: {problem}",
            )
            return None
        return inherited

    def session_duration(self, entry: _Entry, defaults: _Defaults) -> int | None:
        if entry.duration is not None:
            seconds = entry.duration
            if not SESSION_MIN <= seconds <= SESSION_MAX:
                self.error(
                    f"{entry.place}.duration",
                    _range_message(seconds, SESSION_MIN, SESSION_MAX, "an MFA session"),
                )
                return None
            return seconds
        if "duration" in entry.rejected:
            return None  # already reported
        return defaults.duration or SESSION_DEFAULT

    def role_duration(
        self, entry: _Entry, chained: bool, source: str
    ) -> tuple[int | None, int | None]:
        if entry.duration is None:
            if "duration" in entry.rejected:
                return None, None
            return ROLE_DEFAULT, ROLE_DEFAULT
        requested = entry.duration
        if not ROLE_MIN <= requested <= ROLE_MAX:
            self.error(
                f"{entry.place}.duration", _range_message(requested, ROLE_MIN, ROLE_MAX, "a role")
            )
            return None, None
        if chained and requested > ROLE_CHAINED_MAX:
            self.warnings.append(
                f"{entry.place}.duration: {format_duration(requested)} capped to"
                f" {format_duration(ROLE_CHAINED_MAX)}: AWS limits role chaining to 1 hour"
                f" (the source {source!r} holds session credentials)"
            )
            return requested, ROLE_CHAINED_MAX
        return requested, requested

    def resolve_region(
        self,
        entry: _Entry,
        entries: Mapping[str, _Entry],
        defaults: _Defaults,
        aws: AwsFiles,
        mfa_serial: str | None,
    ) -> str:
        if entry.region:
            return entry.region
        if defaults.region:
            return defaults.region
        for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.env.get(variable):
                return self.env[variable]
        root = entry.source_profile
        seen = {entry.name}
        while root is not None and root in entries and root not in seen:
            seen.add(root)
            root = entries[root].source_profile
        if root is not None and root not in entries:
            configured = aws.region_for(root)
            if configured:
                return configured
        for arn in (entry.role_arn, mfa_serial):
            match = _PARTITION.match(arn or "")
            if match and match[1] in _PARTITION_REGION:
                return _PARTITION_REGION[match[1]]
        return DEFAULT_REGION


def _refresh_order(profiles: list[Profile]) -> tuple[Profile, ...]:
    """Every source before its dependents; otherwise the order of the file.

    Each step takes the earliest profile in the file whose source is ready.
    """
    names = {p.name for p in profiles}
    pending = list(profiles)
    ordered: list[Profile] = []
    placed: set[str] = set()
    while pending:
        ready = next(
            (p for p in pending if p.source_profile not in names or p.source_profile in placed),
            pending[0],  # unreachable once cycles are refused; keeps the loop finite
        )
        pending.remove(ready)
        ordered.append(ready)
        placed.add(ready.name)
    return tuple(ordered)


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
            f"{_show(serial)} is a U2F security key or passkey; STS takes codes only from"
            " a virtual or hardware TOTP device"
        )
    return (
        f"{_show(serial)} is not an MFA device ARN such as {_MFA_EXAMPLE}"
        " (or a hardware token's serial number)"
    )


def _default_session_name(profile: str) -> str:
    return _NOT_SESSION_NAME_CHAR.sub("-", f"credd-{profile}")[:64]


def _range_message(seconds: int, low: int, high: int, what: str) -> str:
    api = "GetSessionToken" if what == "an MFA session" else "AssumeRole"
    return (
        f"{format_duration(seconds)} is out of range for {what}:"
        f" {api} allows {format_duration(low)} to {format_duration(high)}"
    )


def _expand_user(text: str, env: Mapping[str, str]) -> str:
    """`~` and `~/...` from the HOME given (tests and the daemon pass their own env)."""
    home = env.get("HOME")
    if home and (text == "~" or text.startswith("~/")):
        return home + text[1:]
    return os.path.expanduser(text)


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """`line 4, column 7: <problem>`, 1-based, as editors count."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    context = ""
    if exc.context and exc.problem and exc.context_mark is not None:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return f"{where}: {problem}{context}"


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


def _show(value: object) -> str:
    """A scalar quoted (cut short), a container only named: its repr could be huge."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "...")
    return _kind_of(value)
