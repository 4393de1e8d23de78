"""`credd check`: validate the policy and what it refers to, and say what credd would do.

Exit 0 when the policy is valid, every source profile exists and the credentials
file can be used as it stands; 2 otherwise, with every problem printed at once
(SPEC.md "Commands", "The AWS files, before a code is spent").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from credd.adapters.keyring import Keyring
from credd.commands.keys import file_keys
from credd.errors import CreddError, PolicyError
from credd.files.writer import CredentialsWriter
from credd.policy import Policy, format_summary, load_policy
from credd.policy.filecheck import blocked_by_file, sources_without_file_keys

EXIT_VALID = 0
EXIT_INVALID = 2


def run_check(
    policy_path: Path,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    keyring: Keyring | None = None,
) -> int:
    """Print the policy's summary to `out` (exit 0), or every problem to `err` (exit 2)."""
    keyring = keyring or Keyring()
    try:
        policy = load_policy(policy_path, env, in_keyring=keyring.holds)
    except PolicyError as exc:
        err.write(f"{exc.message}\n")
        return EXIT_INVALID
    problems = problem_lines(policy, keyring)
    if problems:
        err.writelines(f"{line}\n" for line in problems)
        return EXIT_INVALID
    out.write(format_summary(policy))
    out.writelines(f"{line}\n" for line in _keyring_lines(policy, keyring))
    count = len(policy.warnings)
    noted = f", with {count} warning{'s' if count != 1 else ''} above" if count else ""
    out.write(f"\n{policy.path}: the policy is valid{noted}\n")
    return EXIT_VALID


def _keyring_lines(policy: Policy, keyring: Keyring) -> list[str]:
    """Which sources' keys are in the keyring; a warning where plaintext keys remain too."""
    sources = sorted({p.source_profile for p in policy.profiles if not p.source_is_managed})
    listed = keyring.profiles()
    if not sources or not listed:
        return []
    in_keyring = [s for s in sources if s in listed]
    if not in_keyring:
        return []
    lines = ["", f"keys in the keyring: {', '.join(in_keyring)}"]
    try:
        sections = CredentialsWriter(policy.credentials_file).read()
    except CreddError:
        return lines
    for source in in_keyring:
        if file_keys(sections.get(source)) is not None:
            lines.append(
                f"warning: {policy.credentials_file} still holds plaintext keys for {source};"
                " the keyring's are used: run `credd keys import "
                f"{source}` (the same key), or delete its two key lines"
            )
    return lines


def problem_lines(policy: Policy, keyring: Keyring) -> list[str]:
    """What stops the profiles of a valid policy from being renewed: a credentials file
    that cannot be used (the cause of the rest), then each profile's own problems."""
    lines: list[str] = []
    health = CredentialsWriter(policy.credentials_file).inspect()
    missing = sources_without_file_keys(policy, health)
    from_file = blocked_by_file(policy, health, keyring.holding(missing) if missing else ())
    if health.problem is not None:
        lines.append(health.problem)
        lines.append(f"  so no profile can be renewed until it is fixed: {', '.join(from_file)}")
        from_file = {}
    per_profile = {**policy.problems, **from_file}
    if per_profile:
        count = len(per_profile)
        lines.append(f"{policy.path}: {count} profile{'s' if count != 1 else ''} cannot be renewed")
        for profile in policy.profiles:
            if profile.name in policy.problems:
                lines.append(f"  {policy.problems[profile.name]}")
            elif profile.name in from_file:
                lines.append(f"  profiles.{profile.name}: {from_file[profile.name]}")
    return lines
