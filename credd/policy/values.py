"""The policy's values: a problem found in it, a resolved profile, and the policy itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from credd.states import Kind


@dataclass(frozen=True)
class Problem:
    """Something wrong with the policy, or worth a warning: where it is, and what.

    `place` is `profiles.prod-admin.duration`, `top level`, or `line 4, column 7`
    for YAML syntax; empty when the message names its own place (a note about an
    AWS file). `profile` is the profile it belongs to, which orders the list
    people read. Messages never quote a secret.
    """

    place: str
    message: str
    profile: str | None = None

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


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
    # Rotate the source's long-term key when IAM says it is older than this (seconds).
    rotate_every: int | None = None

    @property
    def needs_code(self) -> bool:
        """A TOTP code is needed to renew it: an MFA session, or a role with its own device."""
        return self.kind is Kind.MFA_SESSION or self.mfa_serial is not None


def _no_blocked() -> Mapping[str, tuple[Problem, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Policy:
    """A valid policy: its profiles in refresh order, and what `credd check` should say.

    `notes` are the warnings; `blocked` holds the profiles that cannot be renewed
    as things stand (a source found nowhere, long-term keys in the way), each
    with why. `warnings` and `problems` are the same as the text people read.
    """

    path: Path
    credentials_file: Path
    profiles: tuple[Profile, ...]  # every source before its dependents, otherwise file order
    notes: tuple[Problem, ...] = ()
    endpoint_port: int = 0  # the local credentials endpoint's port; 0: chosen by the system
    blocked: Mapping[str, tuple[Problem, ...]] = field(default_factory=_no_blocked)

    def get(self, name: str) -> Profile | None:
        """The profile called `name`, or None."""
        return next((p for p in self.profiles if p.name == name), None)

    def dependents(self, name: str) -> tuple[Profile, ...]:
        """The profiles whose source is `name` (direct dependents only), in refresh order."""
        return self._dependents.get(name, ())

    @cached_property
    def warnings(self) -> tuple[str, ...]:
        """Each warning as one line: `profiles.prod-admin.duration: 2h capped to 1h: ...`."""
        return tuple(str(note) for note in self.notes)

    @cached_property
    def problems(self) -> Mapping[str, str]:
        """Each blocked profile's reasons as one line (the daemon shows it as its error)."""
        return MappingProxyType(
            {name: join_problems(found) for name, found in self.blocked.items()}
        )

    @cached_property
    def _dependents(self) -> Mapping[str, tuple[Profile, ...]]:
        # Asked after every renewal: a scan of every profile each time made a fan-out over
        # 1,000 profiles O(n²) (bench/RESULTS.md #4).
        found: dict[str, list[Profile]] = {}
        for profile in self.profiles:
            found.setdefault(profile.source_profile, []).append(profile)
        return MappingProxyType({source: tuple(group) for source, group in found.items()})


def join_problems(problems: tuple[Problem, ...]) -> str:
    """One profile's problems as one line, as `credd check` lists them."""
    return "; ".join(str(problem) for problem in problems)
