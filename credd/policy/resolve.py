"""Each checked entry resolved against the AWS config and credentials files: pure.

What the AWS files decide: whether a source profile exists and holds
long-term keys (an MFA session needs them; a role on a session is chained
and capped to 1h), the device an MFA session leaves out, and the region. A
source found nowhere, or a profile that would overwrite long-term keys, is
not an error of the policy but a problem of that one profile (`blocked`):
`credd check` reports it and exits 2, a running daemon puts only that
profile in `error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from credd.durations import format_duration
from credd.files.lookup import AwsFiles
from credd.partitions import DEFAULT_PARTITION, DEFAULT_REGION, PARTITION_REGIONS, partition_of
from credd.policy.validate import (
    MFA_EXAMPLE,
    ROLE_CHAINED_MAX,
    ROLE_DEFAULT,
    ROLE_MAX,
    ROLE_MIN,
    SESSION_DEFAULT,
    SESSION_MAX,
    SESSION_MIN,
    Checked,
    Defaults,
    Entry,
    default_session_name,
    mfa_serial_problem,
    range_message,
)
from credd.policy.values import Problem, Profile
from credd.states import Kind

REFRESH_BEFORE_DEFAULT = 900


@dataclass(frozen=True)
class Resolved:
    """The profiles made from the entries, in refresh order, and what stood in the way."""

    profiles: tuple[Profile, ...]
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    blocked: Mapping[str, tuple[Problem, ...]]  # profile -> why it cannot be renewed


def resolve(checked: Checked, aws: AwsFiles, env: Mapping[str, str]) -> Resolved:
    """Fill every setting of each valid entry from the policy, `aws` and `env` (the region)."""
    return _Resolver(checked, aws, env).resolve()


class _Resolver:
    def __init__(self, checked: Checked, aws: AwsFiles, env: Mapping[str, str]) -> None:
        self.entries = checked.entries
        self.defaults: Defaults = checked.defaults
        self.on_cycles = checked.on_cycles
        self.aws = aws
        self.env = env
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.blocked: dict[str, tuple[Problem, ...]] = {}

    def resolve(self) -> Resolved:
        profiles = []
        for entry in self.entries.values():
            source = entry.source_profile
            if entry.name in self.on_cycles or source is None or source == entry.name:
                self.without_source(entry)
            elif (profile := self.profile(entry)) is not None:
                profiles.append(profile)
        return Resolved(
            profiles=_refresh_order(profiles),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            blocked=self.blocked,
        )

    def error(self, entry: Entry, place: str, message: str) -> None:
        self.errors.append(Problem(place, message, entry.name))

    def warn(self, entry: Entry, place: str, message: str) -> None:
        self.warnings.append(Problem(place, message, entry.name))

    def without_source(self, entry: Entry) -> None:
        """The problems of an entry whose source cannot be followed (missing, itself, on a
        cycle) that do not depend on it, so one structural error hides nothing else: the
        duration's range, and a lead of its own that is not under it."""
        if entry.is_role:
            _, duration = self.role_duration(entry, chained=False, source="")
        else:
            duration = self.session_duration(entry)
        lead = entry.refresh_before
        if duration is not None and lead is not None and lead >= duration:
            self.error(entry, f"{entry.place}.refresh_before", _endless(lead, duration))

    def profile(self, entry: Entry) -> Profile | None:
        """Check what depends on the source and fill every default; None when invalid."""
        aws = self.aws
        place = entry.place
        source = entry.source_profile
        assert source is not None
        source_is_managed = source in self.entries
        source_found = source_is_managed or aws.has_profile(source)
        blocked: list[Problem] = []
        if not source_found:
            # A file that could not be parsed hides its profiles: say so, with its line.
            why = "".join(f"; {note}" for note in aws.notes)
            blocked.append(
                Problem(
                    f"{place}.source_profile",
                    f"{source} is neither in the policy nor in"
                    f" {aws.config_path} or {aws.credentials_path}{why}",
                    entry.name,
                )
            )
        overwritten = aws.credentials.get(entry.name)
        if overwritten is not None and overwritten.has_long_term_keys():
            blocked.append(
                Problem(
                    place,
                    f"{aws.credentials_path} holds long-term keys under [{entry.name}];"
                    " credd would overwrite them: rename the profile or move the keys",
                    entry.name,
                )
            )
        if blocked:
            self.blocked[entry.name] = tuple(blocked)

        ok = not entry.rejected and not (entry.is_role and entry.role_arn is None)
        if entry.is_role:
            kind = Kind.ROLE
            mfa_serial = entry.mfa_serial
            if mfa_serial is not None and source_is_managed:
                self.error(
                    entry,
                    f"{place}.mfa_serial",
                    f"not allowed: the source {source} is managed by credd,"
                    " so the chain already carries MFA",
                )
                ok = False
            chained = source_is_managed or (source_found and not aws.has_long_term_keys(source))
            requested, duration = self.role_duration(entry, chained, source)
        else:
            kind = Kind.MFA_SESSION
            mfa_serial = self.session_mfa_serial(entry, source, source_is_managed)
            if source_found and mfa_serial is None:
                ok = False
            requested = duration = self.session_duration(entry)
        if duration is None or requested is None:
            return None

        refresh_before = entry.refresh_before
        refresh_place = f"{place}.refresh_before"
        if refresh_before is None and "refresh_before" not in entry.rejected:
            refresh_before = self.defaults.refresh_before
            refresh_place = f"{place}.refresh_before (from defaults.refresh_before)"
        if refresh_before is None:
            refresh_before = REFRESH_BEFORE_DEFAULT
            refresh_place = f"{place}.refresh_before (default 15m)"
        if entry.refresh_before is None and refresh_before * 2 > duration:
            # Inherited, not chosen for this profile: a 15m role (AWS's minimum) is valid
            # as it is. The planner never renews in the first half of a life anyway.
            capped = duration // 2
            self.warn(
                entry,
                refresh_place,
                f"{format_duration(refresh_before)} capped to {format_duration(capped)},"
                f" half the duration {format_duration(duration)}: credd renews no sooner"
                " than halfway through a session's life",
            )
            refresh_before = capped
        elif refresh_before >= duration:
            self.error(entry, refresh_place, _endless(refresh_before, duration))
            ok = False
        rotate_every = entry.rotate_every
        if source_is_managed and rotate_every is not None:
            self.error(
                entry,
                f"{place}.rotate_every",
                f"{source} is managed by credd and holds no long-term key to rotate;"
                f" set rotate_every on the profile whose source_profile holds the keys",
            )
            ok = False
        if rotate_every is None and not source_is_managed:
            rotate_every = self.defaults.rotate_every
        if not ok:
            return None
        return Profile(
            name=entry.name,
            kind=kind,
            source_profile=source,
            mfa_serial=mfa_serial,
            role_arn=entry.role_arn,
            role_session_name=(entry.role_session_name or default_session_name(entry.name))
            if entry.is_role
            else None,
            external_id=entry.external_id,
            duration=duration,
            requested_duration=requested,
            refresh_before=refresh_before,
            region=self.region(entry, mfa_serial),
            code_command=entry.code_command or self.defaults.code_command,
            notify=entry.notify or self.defaults.notify,
            source_is_managed=source_is_managed,
            rotate_every=rotate_every,
        )

    def session_mfa_serial(self, entry: Entry, source: str, source_is_managed: bool) -> str | None:
        aws = self.aws
        place = entry.place
        if source_is_managed:
            self.error(
                entry,
                f"{place}.source_profile",
                f"{source} is managed by credd, but GetSessionToken needs an IAM user's"
                " long-term keys: an MFA session cannot start from another session or role",
            )
            return entry.mfa_serial
        if aws.has_profile(source) and not aws.has_long_term_keys(source):
            self.warn(
                entry,
                f"{place}.source_profile",
                f"{source} holds no long-term keys in the AWS files;"
                " GetSessionToken works only with an IAM user's access keys",
            )
        if entry.mfa_serial is not None or "mfa_serial" in entry.rejected:
            return entry.mfa_serial
        if not aws.has_profile(source):
            return None  # the missing source is the one reference problem to report
        inherited = aws.mfa_serial_for(source)
        if inherited is None:
            self.error(
                entry,
                f"{place}.mfa_serial",
                f"missing, and the source profile {source} names none in"
                f" {aws.config_path} or {aws.credentials_path}; add mfa_serial: {MFA_EXAMPLE}",
            )
            return None
        problem = mfa_serial_problem(inherited)
        if problem:
            self.error(
                entry,
                f"{place}.mfa_serial",
                f"missing, and the mfa_serial of profile {source} in the AWS files"
                f" is unusable: {problem}",
            )
            return None
        return inherited

    def session_duration(self, entry: Entry) -> int | None:
        if entry.duration is not None:
            seconds = entry.duration
            if not SESSION_MIN <= seconds <= SESSION_MAX:
                self.error(
                    entry,
                    f"{entry.place}.duration",
                    range_message(seconds, SESSION_MIN, SESSION_MAX, "an MFA session"),
                )
                return None
            return seconds
        if "duration" in entry.rejected:
            return None  # already reported
        return self.defaults.duration or SESSION_DEFAULT

    def role_duration(
        self, entry: Entry, chained: bool, source: str
    ) -> tuple[int | None, int | None]:
        if entry.duration is None:
            if "duration" in entry.rejected:
                return None, None
            return ROLE_DEFAULT, ROLE_DEFAULT
        requested = entry.duration
        if not ROLE_MIN <= requested <= ROLE_MAX:
            self.error(
                entry,
                f"{entry.place}.duration",
                range_message(requested, ROLE_MIN, ROLE_MAX, "a role"),
            )
            return None, None
        if chained and requested > ROLE_CHAINED_MAX:
            self.warn(
                entry,
                f"{entry.place}.duration",
                f"{format_duration(requested)} capped to"
                f" {format_duration(ROLE_CHAINED_MAX)}: AWS limits role chaining to 1 hour"
                f" (the source {source} holds session credentials)",
            )
            return requested, ROLE_CHAINED_MAX
        return requested, requested

    def region(self, entry: Entry, mfa_serial: str | None) -> str:
        if entry.region:
            return entry.region
        if self.defaults.region:
            return self.defaults.region
        for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.env.get(variable):
                return self.env[variable]
        root = entry.source_profile
        seen = {entry.name}
        while root is not None and root in self.entries and root not in seen:
            seen.add(root)
            root = self.entries[root].source_profile
        if root is not None and root not in self.entries:
            configured = self.aws.region_for(root)
            if configured:
                return configured
        for arn in (entry.role_arn, mfa_serial):
            partition = partition_of(arn) if arn else None
            if partition in PARTITION_REGIONS and partition != DEFAULT_PARTITION:
                return PARTITION_REGIONS[partition]
        return DEFAULT_REGION


def _endless(lead: int, duration: int) -> str:
    return (
        f"{format_duration(lead)} must be less than the duration {format_duration(duration)},"
        " or credd would renew without end"
    )


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
