"""What `credd check` prints about a valid policy: each profile's settings, then the rest."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from credd.durations import format_duration
from credd.policy.values import Policy, Profile


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
